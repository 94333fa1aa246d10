"""The whole model against PyTorch autograd + torch.optim.AdamW: rewarm convert hf, then
rewarm train for several steps with gradient accumulation, clipping and warmup+cosine, and
compare losses, learning rates, grad norms, final weights and Adam moments."""
import json

import h5py
import numpy as np
import pytest
import torch

from helpers import rewarm, write_safetensors, write_shard, write_toml
from reference import GPTNeoX, decay_groups, hf_config, schedule

STEPS, T, MB, GB = 6, 16, 2, 4
# eps 1e-6: the k bias outside the rotary dims has an exactly-zero true gradient (softmax is
# shift-invariant), so both sides hold rounding noise there that a smaller eps would blow up to ±lr.
OPT = dict(lr=5e-3, min_lr=5e-4, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1, clip=0.5, warmup=2)


def model_config(parallel, act, rotary_pct, eps=1e-5, base=10000.0):
    return dict(vocab_size=37, hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=40,
                rotary_pct=rotary_pct, rotary_emb_base=base, max_position_embeddings=64, layer_norm_eps=eps,
                use_parallel_residual=parallel, hidden_act=act)


def reference_run(model, tokens, clip):
    decay, no_decay = decay_groups(model)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": OPT["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=OPT["lr"], betas=OPT["betas"], eps=OPT["eps"], foreach=False)
    n_windows = (len(tokens) - 1) // T
    losses, lrs, norms = [], [], []
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        total = 0.0
        for u in range(GB // MB):
            first = (step - 1) * GB + u * MB
            rows = [tokens[((first + j) % n_windows) * T:][: T + 1] for j in range(MB)]
            batch = torch.tensor(np.array(rows, dtype=np.int64))
            loss = model(batch[:, :-1], batch[:, 1:]) / (GB // MB)
            loss.backward()
            total += loss.item()
        # grad_clip = 0 disables clipping: the norm is still logged
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else float("inf")).item())
        lr = schedule("cosine", step, OPT["lr"], OPT["min_lr"], OPT["warmup"], STEPS)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        losses.append(total)
        lrs.append(lr)
    return opt, losses, lrs, norms


@pytest.mark.parametrize("parallel,act,rotary_pct,eps,base,clip", [
    (True, "gelu", 0.25, 1e-5, 10000.0, 0.5), (False, "gelu", 0.5, 1e-5, 10000.0, 0.5),
    (True, "gelu_fast", 1.0, 1e-5, 10000.0, 0.5), (False, "gelu_fast", 0.25, 1e-5, 10000.0, 0.5),
    (True, "gelu", 1.0, 0.3, 10.0, 0.0)])  # LayerNorm eps and rotary base that matter; clipping off
def test_matches_pytorch(tmp_path, parallel, act, rotary_pct, eps, base, clip):
    torch.manual_seed(0)
    c = model_config(parallel, act, rotary_pct, eps, base)
    model = GPTNeoX(c)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if name.endswith("layernorm.weight") or name.endswith("layer_norm.weight") else 0.0))
    hf = tmp_path / "hf"
    hf.mkdir()
    write_safetensors(hf / "model.safetensors", {k: v.detach().numpy() for k, v in model.state_dict().items()})
    (hf / "config.json").write_text(json.dumps(hf_config(c)))
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, c["vocab_size"], size=30 * T + 1)
    write_shard(tmp_path / "train.h5", tokens, c["vocab_size"])
    rewarm("convert", "hf", hf, "--out", tmp_path / "init.h5")
    write_toml(tmp_path / "run.toml", f"""
run_dir = "{tmp_path}/run"
[init]
from = "{tmp_path}/init.h5"
load = "weights"
[data]
seq_len = {T}
micro_batch = {MB}
global_batch = {GB}
shuffle = false
[[data.train]]
path = "{tmp_path}/train.h5"
[optimizer]
lr = {OPT['lr']}
min_lr = {OPT['min_lr']}
betas = [0.9, 0.95]
eps = {OPT['eps']}
weight_decay = {OPT['weight_decay']}
grad_clip = {clip}
[schedule]
kind = "cosine"
warmup_steps = {OPT['warmup']}
total_steps = {STEPS}
[train]
log_interval = 1
checkpoint_interval = {STEPS}
""")
    rewarm("train", tmp_path / "run.toml")

    opt, losses, lrs, norms = reference_run(model, tokens, clip)
    with h5py.File(tmp_path / "run" / "metrics.h5", "r") as m:
        np.testing.assert_array_equal(m["train/step"][:], np.arange(1, STEPS + 1))
        # tolerances ~3x the agreement observed (float32 on both sides, different summation orders):
        # losses 1e-7, norms 2e-7 relative, weights 4e-6 absolute, moments 7e-6 of their largest value
        np.testing.assert_allclose(m["train/loss"][:], losses, rtol=3e-7)
        np.testing.assert_allclose(m["train/lr"][:], lrs, rtol=1e-12)
        np.testing.assert_allclose(m["train/grad_norm"][:], norms, rtol=6e-7)
    if clip > 0:
        assert min(norms) > clip, "the test should exercise clipping"
    with h5py.File(tmp_path / "run" / "checkpoints" / f"step_{STEPS:08d}.h5", "r") as ck:
        assert ck.attrs["step"] == STEPS
        for name, p in model.named_parameters():
            st = opt.state[p]
            np.testing.assert_allclose(ck["model/" + name][:], p.detach().numpy(), atol=1e-5, rtol=0, err_msg=name)
            scale = float(st["exp_avg"].abs().max())
            np.testing.assert_allclose(ck["optimizer/exp_avg/" + name][:], st["exp_avg"].numpy(), atol=2e-5 * scale, rtol=0, err_msg=name)
            scale = float(st["exp_avg_sq"].abs().max())
            np.testing.assert_allclose(ck["optimizer/exp_avg_sq/" + name][:], st["exp_avg_sq"].numpy(), atol=2e-5 * scale, rtol=0, err_msg=name)
