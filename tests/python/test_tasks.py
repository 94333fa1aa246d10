"""Downstream tasks ([[data.tasks]], rewarm eval --scores): every choice's log-likelihood and
greedy flag against the PyTorch oracle, acc and acc_norm by lm-evaluation-harness's rules, the
same scores on 1, 2 and 4 ranks, a hand-made task whose answers a trained model knows, scored
during training into metrics.h5, and a malformed task line named by its number."""
import json
import shutil
import subprocess

import h5py
import numpy as np
import pytest
import torch

from helpers import REWARM, rewarm, tiny_config, write_config, write_safetensors, write_shard, write_task
from reference import GPTNeoX, hf_config

T = 16
C = dict(vocab_size=13, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
         rotary_pct=0.25, rotary_emb_base=10000.0, max_position_embeddings=32, layer_norm_eps=1e-5,
         use_parallel_residual=True, hidden_act="gelu")


def oracle_scores(model, examples):
    """Each choice's log-likelihood and greedy flag as the harness computes them."""
    ll, greedy = [], []
    with torch.no_grad():
        for context, choices, _, _ in examples:
            for cont in choices:
                seq = (context + cont)[-(T + 1):]
                n = min(len(cont), len(seq) - 1)
                logp = torch.log_softmax(model.logits(torch.tensor([seq[:-1]])).double(), -1)[0]
                pos = range(len(seq) - 1 - n, len(seq) - 1)
                ll.append(sum(float(logp[p, seq[p + 1]]) for p in pos))
                greedy.append(int(all(int(logp[p].argmax()) == seq[p + 1] for p in pos)))
    return ll, greedy


def accuracy(examples, ll, greedy):
    acc = acc_norm = 0
    i = 0
    for _, choices, lengths, answer in examples:
        s = np.array(ll[i : i + len(choices)])
        if len(choices) == 1:
            acc += greedy[i]
        else:
            acc += int(np.argmax(s) == answer)
            acc_norm += int(np.argmax(s / np.array(lengths)) == answer)
        i += len(choices)
    return acc / len(examples), acc_norm / len(examples)


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(2)
    model = GPTNeoX(C)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.4)
    hf = tmp_path / "hf"
    hf.mkdir()
    write_safetensors(hf / "model.safetensors", {k: v.detach().numpy() for k, v in model.state_dict().items()})
    (hf / "config.json").write_text(json.dumps(hf_config(C)))
    rewarm("convert", "hf", hf, "--out", tmp_path / "model.h5")
    rng = np.random.default_rng(3)
    write_shard(tmp_path / "train.h5", rng.integers(0, 13, 400), 13)
    examples = []
    for e in range(11):  # 2-5 choices of 1-4 tokens; some pairs longer than seq_len + 1
        context = rng.integers(0, 13, 13 + e if e % 3 == 0 else int(rng.integers(1, 8))).tolist()
        m = int(rng.integers(2, 6))
        choices = [rng.integers(0, 13, int(rng.integers(1, 5))).tolist() for _ in range(m)]
        examples.append((context, choices, [int(rng.integers(1, 20)) for _ in range(m)], int(rng.integers(0, m))))
    assert sum(len(c) + len(x) > T + 1 for c, xs, _, _ in examples for x in xs) >= 5  # truncated on the left
    write_task(tmp_path / "mc.h5", examples)
    cfg = tiny_config(tmp_path / "run", tmp_path / "train.h5", data={"micro_batch": 3, "global_batch": 6},
                      init={"from": str(tmp_path / "model.h5")})
    cfg["data"]["tasks"] = [{"name": "mc", "path": str(tmp_path / "mc.h5")}]
    return model, examples, write_config(tmp_path / "eval.toml", cfg)


def test_scores_match_pytorch(tmp_path, setup):
    model, examples, cfg = setup
    p = rewarm("eval", cfg, "--checkpoint", tmp_path / "model.h5", "--scores", tmp_path / "s.json")
    got = json.loads((tmp_path / "s.json").read_text())["mc"]
    ll, greedy = oracle_scores(model, examples)
    # float32 forward pass against the double log-softmax of torch's float32 logits: 1e-6 relative observed
    np.testing.assert_allclose(got["loglikelihood"], ll, rtol=1e-5, atol=1e-5)
    assert got["greedy"] == greedy
    acc, acc_norm = accuracy(examples, ll, greedy)
    assert got["acc"] == acc and got["acc_norm"] == acc_norm and got["examples"] == len(examples)
    assert f"acc {acc:.6f}  acc_norm {acc_norm:.6f}  (11 examples)" in p.stdout
    assert 0 < acc < 1 and acc != acc_norm, "the random task should tell the two rules apart"


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs OpenMPI's mpirun")
def test_same_scores_on_1_2_and_4_ranks_and_under_zero_3(tmp_path, setup):
    from test_mpi import MPI_ENV
    _, _, cfg = setup
    scores = []
    for n, zero in ((1, 0), (2, 0), (4, 0), (2, 3)):  # ZeRO-3: every pass gathers collectively, ranks pad theirs
        out = tmp_path / f"s{n}-{zero}.json"
        subprocess.run(["mpirun", "-n", str(n), "--oversubscribe", REWARM, "eval", str(cfg), "--checkpoint",
                        str(tmp_path / "model.h5"), "--scores", str(out), "--set", f"parallel.zero={zero}"], check=True,
                       env=MPI_ENV, capture_output=True, timeout=120)
        scores.append(json.loads(out.read_text())["mc"])
    for s in scores[1:]:
        assert s["acc"] == scores[0]["acc"] and s["acc_norm"] == scores[0]["acc_norm"] and s["greedy"] == scores[0]["greedy"]
        assert s["loglikelihood"] == scores[0]["loglikelihood"]  # to the bit: each choice in the same batch place


def test_a_trained_model_knows_a_hand_made_task(tmp_path):
    """Data that counts 0, 1, ..., 12, 0, 1, ...: after training, the next number is the answer
    (multiple choice) and the greedy continuation (single choice), and metrics.h5 says so."""
    write_shard(tmp_path / "count.h5", np.arange(3000) % 13, 13)
    known = [([3, 4, 5], [[6], [9], [2]], [2, 2, 2], 0), ([10, 11], [[4, 5], [12, 0]], [4, 4], 1),
             ([7, 8, 9, 10], [[1], [5], [7], [11]], [2, 2, 2, 2], 3)]
    write_task(tmp_path / "mc.h5", known)
    write_task(tmp_path / "next.h5", [([1, 2, 3], [[4, 5, 6]], [6], 0), ([9, 10], [[11, 12]], [4], 0)])
    cfg = tiny_config(tmp_path / "run", tmp_path / "count.h5", optimizer={"lr": 3e-2},
                      schedule={"total_steps": 60, "warmup_steps": 5},
                      train={"eval_interval": 30, "checkpoint_interval": 30})
    cfg["data"]["tasks"] = [{"name": "mc", "path": str(tmp_path / "mc.h5")},
                            {"name": "next", "path": str(tmp_path / "next.h5"), "max_examples": 2}]
    rewarm("train", write_config(tmp_path / "run.toml", cfg), "--stop-at", "30")
    p = rewarm("train", tmp_path / "run.toml")  # resumed: the rows of steps 0 and 30 are kept
    assert "| mc           acc 1.0000 | acc_norm 1.0000 | 3 examples" in p.stdout
    assert "| next         acc 1.0000 | 2 examples" in p.stdout
    with h5py.File(tmp_path / "run" / "metrics.h5", "r") as m:
        assert m["tasks/mc/step"][:].tolist() == [0, 30, 60]
        assert m["tasks/mc/acc"][-1] == 1.0 and m["tasks/next/acc"][-1] == 1.0 and np.isnan(m["tasks/next/acc_norm"][-1])
        assert m["tasks/next/acc"][0] < 1.0  # the random model did not know
    info = rewarm("info", tmp_path / "run" / "metrics.h5").stdout
    assert "task mc: 3 rows, last step 60, acc 1.0000, acc_norm 1.0000" in info and "task next: 3 rows" in info
    assert "task, 2 examples (2 with one choice), 2 choices" in rewarm("info", tmp_path / "next.h5").stdout


def test_malformed_task_line_is_named(tmp_path):
    tok = tmp_path / "tokenizer.json"
    # a byte-level BPE with no merges: enough to read the lines
    vocab = {"<|endoftext|>": 0}
    from_bytes = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = [chr(b) for b in from_bytes] + [chr(256 + i) for i in range(256 - len(from_bytes))]
    for ch in chars:
        vocab[ch] = len(vocab)
    tok.write_text(json.dumps({
        "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "vocab": vocab, "merges": []}}))
    good = json.dumps({"context": "Q: 2+2?", "choices": [" 4", " 5"], "answer": 0})
    for bad, why in [('{"context": "x", "choices": [" a"], "answer": 1}', "answer 1 is not an index of its 1 choices"),
                     ('{"context": "x", "choices": [], "answer": 0}', "needs \"choices\""),
                     ('{"context": "x", "choices": [" a", 3], "answer": 0}', "choice 1 is not a string"),
                     ("not json", "malformed JSON")]:
        (tmp_path / "t.jsonl").write_text(good + "\n" + good + "\n" + bad + "\n")
        p = rewarm("tokenize", "--tokenizer", tok, "--task", tmp_path / "t.jsonl", "--out", tmp_path / "t.h5", check=False)
        lines = [l for l in p.stderr.splitlines() if l.startswith("rewarm: error")]
        assert p.returncode != 0 and len(lines) == 1 and "t.jsonl: line 3: " in lines[0] and why in lines[0], p.stderr
        assert not (tmp_path / "t.h5").exists()
    (tmp_path / "t.jsonl").write_text(good + "\n")
    rewarm("tokenize", "--tokenizer", tok, "--task", tmp_path / "t.jsonl", "--out", tmp_path / "t.h5")
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert f["choice_bytes"][:].tolist() == [2, 2] and f["answer"][:].tolist() == [0]
