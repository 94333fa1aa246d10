"""rewarm tokenize against Hugging Face's own implementation (the `tokenizers` Node binding):
a GPT-NeoX-20B-structured byte-level BPE trained here, identical ids on several MB of varied
text (prose, code, numbers, whitespace runs, many scripts, emoji, combining marks, special
tokens, invalid UTF-8), plain and .zst input; then every kind of bad input."""
import glob
import json
import os
import random
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from helpers import ROOT, rewarm

ORACLE_DIR = os.path.join(ROOT, "tests", "tokenizer")
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node (the HF tokenizers oracle)")


def node(*args):
    subprocess.run(["node", os.path.join(ORACLE_DIR, "oracle.js"), *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    if not os.path.isdir(os.path.join(ORACLE_DIR, "node_modules", "tokenizers")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-package-lock", "--silent"], cwd=ORACLE_DIR,
                       check=True)
    d = tmp_path_factory.mktemp("tok")
    files = sorted(glob.glob("/usr/share/doc/*/copyright"))[:200] + sorted(glob.glob("/usr/include/*.h"))[:80]
    node("train", d / "tokenizer.json", 30000, *files)
    return d / "tokenizer.json"


SCRIPTS = [(0x00C0, 0x024F), (0x0370, 0x03FF), (0x0400, 0x04FF), (0x0590, 0x05FF), (0x0600, 0x06FF),
           (0x0900, 0x097F), (0x0E00, 0x0E7F), (0x3040, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00),
           (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x2000, 0x206F), (0x2190, 0x22FF), (0xFF01, 0xFF5E)]
SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "    ", "\u00a0", "\u2009", "\u3000", "\u2028", "\u0085", " \t "]
BAD_UTF8 = [b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80\x80"]


def varied_documents(rng, n_bytes):
    prose = [open(f, errors="replace").read() for f in sorted(glob.glob("/usr/share/doc/*/copyright"))[200:400]]
    code = [open(f, errors="replace").read() for f in sorted(glob.glob("/usr/include/*.h"))[80:200]]
    docs, total = [], 0
    while total < n_bytes:
        kind = rng.random()
        if kind < 0.35:  # prose excerpt
            s = rng.choice(prose)
            a = rng.randrange(max(1, len(s)))
            text = s[a : a + rng.randrange(50, 3000)]
        elif kind < 0.55:  # code excerpt
            s = rng.choice(code)
            a = rng.randrange(max(1, len(s)))
            text = s[a : a + rng.randrange(50, 3000)]
        else:  # synthetic: words, numbers, scripts, emoji, combining marks, contractions, specials
            parts = []
            for _ in range(rng.randrange(5, 200)):
                r = rng.random()
                if r < 0.3:
                    parts.append(rng.choice(["the", "The", "it's", "IT'S", "we're", "they'll", "I'd", "can't",
                                             "'s", "'ve", "x'm", "don''t", "café", "naïve", "e\u0301", "A\u030a"]))
                elif r < 0.45:
                    parts.append(str(rng.randrange(10 ** rng.randrange(1, 12))) + rng.choice(["", ".5", ",000", "%", "e-3"]))
                elif r < 0.7:
                    lo, hi = rng.choice(SCRIPTS)
                    parts.append("".join(chr(rng.randrange(lo, hi)) for _ in range(rng.randrange(1, 12))))
                elif r < 0.8:
                    parts.append(rng.choice(["👨\u200d👩\u200d👧", "👍🏽", "🇩🇪", "✔\ufe0f", "١٢٣", "１２３", "½", "Ⅻ", "²"]))
                elif r < 0.85:
                    parts.append(rng.choice(["<|endoftext|>", "<|padding|>", "<|endoftext", "|>"]))
                else:
                    parts.append(rng.choice(["!", "?!", "...", "--", "(", ")", "{", "};", "\"", "'", "#", "@", "$", "=>"]))
                parts.append(rng.choice(SPACES) if rng.random() < 0.5 else " ")
            text = "".join(parts)
        docs.append(text)
        total += len(text.encode("utf-8", "surrogatepass"))
    return docs


def write_jsonl(path, docs, rng, bad_utf8=True):
    with open(path, "wb") as f:
        for t in docs:
            line = json.dumps({"id": 1, "text": t}, ensure_ascii=rng.random() < 0.3).encode()
            if bad_utf8 and rng.random() < 0.05:  # raw invalid bytes inside the JSON string
                i = line.index(b'"text": "') + 9
                line = line[:i] + rng.choice(BAD_UTF8) + line[i:]
            f.write(line + b"\n")


def compare(tmp_path, tokenizer, jsonl, *extra):
    node("encode", tokenizer, jsonl, tmp_path / "oracle.bin")
    p = rewarm("tokenize", "--tokenizer", tokenizer, "--jsonl", *extra, "--out", tmp_path / "r.h5", "--quiet")
    expect = np.fromfile(tmp_path / "oracle.bin", dtype=np.uint32)
    with h5py.File(tmp_path / "r.h5", "r") as f:
        got = f["tokens"][:].astype(np.uint32)
        eod = f.attrs["eod_token"]
        offsets = f["document_offsets"][:]
    assert eod == 0
    if len(got) != len(expect) or not np.array_equal(got, expect):
        n = min(len(got), len(expect))
        i = int(np.nonzero(got[:n] != expect[:n])[0][0]) if np.any(got[:n] != expect[:n]) else n
        pytest.fail(f"first difference at token {i}: rewarm {got[i-3:i+8]} vs HF {expect[i-3:i+8]}")
    assert offsets[0] == 0 and offsets[-1] == len(got) and np.all(got[offsets[1:] - 1] == 0)  # each document ends with EOD
    return p.stdout


def test_identical_ids_on_varied_text(tmp_path, tokenizer):
    rng = random.Random(7)
    docs = varied_documents(rng, 4 << 20)
    write_jsonl(tmp_path / "in.jsonl", docs, rng)
    out = compare(tmp_path, tokenizer, tmp_path / "in.jsonl", tmp_path / "in.jsonl")
    assert f"{len(docs)} documents" in out


def test_zstd_input_and_several_files(tmp_path, tokenizer):
    if shutil.which("zstd") is None:
        pytest.skip("needs the zstd command to make input")
    rng = random.Random(8)
    write_jsonl(tmp_path / "a.jsonl", varied_documents(rng, 200_000), rng)
    write_jsonl(tmp_path / "b.jsonl", varied_documents(rng, 200_000), rng)
    subprocess.run(["zstd", "-q", "-f", tmp_path / "b.jsonl"], check=True)
    with open(tmp_path / "ab.jsonl", "wb") as f:
        f.write((tmp_path / "a.jsonl").read_bytes() + (tmp_path / "b.jsonl").read_bytes())
    compare(tmp_path, tokenizer, tmp_path / "ab.jsonl", tmp_path / "a.jsonl", tmp_path / "b.jsonl.zst")


def fails(tmp_path, tokenizer, expect, lines=None, *extra):
    if lines is not None:
        (tmp_path / "bad.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "bad.h5"
    p = rewarm("tokenize", "--tokenizer", tokenizer, "--jsonl", tmp_path / "bad.jsonl", "--out", out, "--quiet", *extra,
               check=False)
    assert p.returncode != 0
    msg = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(msg) == 1 and expect in msg[0], p.stderr
    assert not out.exists() and not os.path.exists(str(out) + ".tmp")


def test_bad_inputs(tmp_path, tokenizer):
    ok = b'{"text": "fine"}'
    fails(tmp_path, tokenizer, "bad.jsonl: line 3: malformed JSON", [ok, ok, b'{"text": "unterminated'])
    fails(tmp_path, tokenizer, "bad.jsonl: line 2: no \"text\" field", [ok, b'{"content": "x"}'])
    fails(tmp_path, tokenizer, "line 1: \"text\" is not a string", [b'{"text": 5}'])
    fails(tmp_path, tokenizer, "line 1: not a JSON object", [b'["text"]'])
    fails(tmp_path, tokenizer, "line 2: no \"body\" field", [b'{"body": "x"}', ok], "--field", "body")
    (tmp_path / "bad.jsonl.zst").write_bytes(b"not zstd at all")
    p = rewarm("tokenize", "--tokenizer", tokenizer, "--jsonl", tmp_path / "bad.jsonl.zst", "--out", tmp_path / "z.h5",
               "--quiet", check=False)
    assert p.returncode != 0 and "bad.jsonl.zst: not a valid zstd stream" in p.stderr
    j = json.loads(open(tokenizer).read())
    for change, expect in [(lambda j: j["model"].update(type="WordPiece"), "model type \"WordPiece\" is not supported"),
                           (lambda j: j["pre_tokenizer"].update(add_prefix_space=True), "pre_tokenizer"),
                           (lambda j: j.update(normalizer={"type": "Lowercase"}), "normalizer"),
                           (lambda j: j["model"]["vocab"].pop("Ġ"), "lacks byte symbol")]:
        k = json.loads(json.dumps(j))
        change(k)
        (tmp_path / "tok.json").write_text(json.dumps(k))
        fails(tmp_path, tmp_path / "tok.json", expect, [ok])
    (tmp_path / "tok.json").write_text("{ not json")
    fails(tmp_path, tmp_path / "tok.json", "tok.json: not valid JSON", [ok])


def test_hf_export_is_complete(tmp_path, tokenizer):
    """The tokenizer travels from `rewarm tokenize`'s shard (or `convert hf`'s model directory)
    through training into every checkpoint, and `convert to-hf` writes it with the files
    AutoTokenizer reads; the exported tokenizer.json encodes as rewarm's tokenize does."""
    from helpers import tiny_config, write_config
    rng = random.Random(5)
    write_jsonl(tmp_path / "in.jsonl", varied_documents(rng, 20_000), rng, bad_utf8=False)
    rewarm("tokenize", "--tokenizer", tokenizer, "--jsonl", tmp_path / "in.jsonl", "--out", tmp_path / "shard.h5", "--quiet")
    with h5py.File(tmp_path / "shard.h5", "r") as f:
        vocab = int(f.attrs["vocab_size"])
        ids = f["tokens"][:].astype(np.uint32)
    cfg = tiny_config(tmp_path / "run", tmp_path / "shard.h5", schedule={"total_steps": 1, "warmup_steps": 0},
                      train={"checkpoint_interval": 1, "eval_at_start": False})
    cfg["model"]["vocab_size"] = vocab
    rewarm("train", write_config(tmp_path / "run.toml", cfg))
    out = tmp_path / "hf"
    rewarm("convert", "to-hf", tmp_path / "run" / "checkpoints" / "step_00000001.h5", "--out", out)
    assert (out / "tokenizer.json").read_bytes() == open(tokenizer, "rb").read()
    tc = json.loads((out / "tokenizer_config.json").read_text())
    assert tc["tokenizer_class"] == "GPTNeoXTokenizerFast" and tc["eos_token"] == "<|endoftext|>"
    assert tc["model_max_length"] == cfg["model"]["max_position_embeddings"] and tc["add_bos_token"] is False
    assert json.loads((out / "special_tokens_map.json").read_text())["eos_token"] == "<|endoftext|>"
    gen, config = json.loads((out / "generation_config.json").read_text()), json.loads((out / "config.json").read_text())
    assert gen["eos_token_id"] == config["eos_token_id"] == 0 and gen["bos_token_id"] == 0
    node("encode", out / "tokenizer.json", tmp_path / "in.jsonl", tmp_path / "oracle.bin")
    np.testing.assert_array_equal(np.fromfile(tmp_path / "oracle.bin", dtype=np.uint32), ids)
    try:  # where transformers is installed (the GPU machine), as lm-eval loads the directory
        import transformers
    except ImportError:
        transformers = None
    if transformers is not None:
        text = "The café's 2026 budget:\n\tnaïve   estimates… 👍🏽"
        (tmp_path / "one.jsonl").write_text(json.dumps({"text": text}) + "\n")
        rewarm("tokenize", "--tokenizer", out / "tokenizer.json", "--jsonl", tmp_path / "one.jsonl", "--out",
               tmp_path / "one.h5", "--quiet")
        with h5py.File(tmp_path / "one.h5", "r") as f:
            assert transformers.AutoTokenizer.from_pretrained(out).encode(text) == f["tokens"][:-1].tolist()
        transformers.GPTNeoXForCausalLM.from_pretrained(out)

    # convert hf keeps the tokenizer of the model directory: back out again unchanged
    rewarm("convert", "hf", out, "--out", tmp_path / "back.h5")
    rewarm("convert", "to-hf", tmp_path / "back.h5", "--out", tmp_path / "again")
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == open(tokenizer, "rb").read()
    # a checkpoint without one: a note, and --tokenizer supplies it
    (out / "tokenizer.json").unlink()
    rewarm("convert", "hf", out, "--out", tmp_path / "bare.h5")
    p = rewarm("convert", "to-hf", tmp_path / "bare.h5", "--out", tmp_path / "bare")
    assert "carries no tokenizer" in p.stderr and not (tmp_path / "bare" / "tokenizer_config.json").exists()
    rewarm("convert", "to-hf", tmp_path / "bare.h5", "--out", tmp_path / "given", "--tokenizer", tokenizer)
    assert (tmp_path / "given" / "tokenizer.json").read_bytes() == open(tokenizer, "rb").read()


def test_task_pairs_encode_as_the_harness_does(tmp_path, tokenizer):
    """rewarm tokenize --task: a choice's tokens are what follows the context's own encoding in the
    encoding of the whole pair, with the context's trailing whitespace moved to the choice
    (lm-evaluation-harness's _encode_pair), against HF tokenizers' encodings of the same texts."""
    examples = [("The capital of France is", [" Paris", " Lyon", " Nice"], 0),
                ("Q: What do bees make?\nA: ", ["honey", "wax paper", "  milk"], 0),  # trailing space moved
                ("naïve café résumé —", [" 2026", " ½", " 👍🏽 ok"], 2),
                ("x = [1, 2, 3]\t\n", ["print(x)", "    return x"], 1),
                ("He said: \"it's", [" fine\"", "'s not\""], 0)]
    with open(tmp_path / "t.jsonl", "w") as f:
        for context, choices, answer in examples:
            f.write(json.dumps({"context": context, "choices": choices, "answer": answer}) + "\n")
    rewarm("tokenize", "--tokenizer", tokenizer, "--task", tmp_path / "t.jsonl", "--out", tmp_path / "t.h5")
    texts = []
    for context, choices, _ in examples:
        stripped = context.rstrip()
        texts.append(stripped)
        texts += [stripped + context[len(stripped):] + c for c in choices]
    with open(tmp_path / "texts.jsonl", "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    node("encode", tokenizer, tmp_path / "texts.jsonl", tmp_path / "oracle.bin")
    ids = np.fromfile(tmp_path / "oracle.bin", dtype=np.uint32).tolist()
    encoded, cur = [], []
    for i in ids:  # each text's ids, then EOD (0)
        if i == 0:
            encoded.append(cur)
            cur = []
        else:
            cur.append(i)
    with h5py.File(tmp_path / "t.h5", "r") as f:
        ctx, co = f["context_tokens"][:].tolist(), f["context_offsets"][:]
        ch, cho, ex = f["choice_tokens"][:].tolist(), f["choice_offsets"][:], f["example_choices"][:]
        nbytes, answers = f["choice_bytes"][:].tolist(), f["answer"][:].tolist()
    k = 0
    for e, (context, choices, answer) in enumerate(examples):
        context_ids = encoded[k]
        assert ctx[co[e]:co[e + 1]] == context_ids, e
        for j, c in enumerate(choices):
            whole = encoded[k + 1 + j]
            assert ch[cho[ex[e] + j]:cho[ex[e] + j + 1]] == whole[len(context_ids):], (e, j)
            assert nbytes[ex[e] + j] == len(c.encode())
        k += 1 + len(choices)
        assert answers[e] == answer
