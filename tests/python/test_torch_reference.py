"""The whole model against PyTorch autograd + torch.optim.AdamW: rewarm convert hf, then
rewarm train for several steps with gradient accumulation, clipping and warmup+cosine, and
compare losses, learning rates, grad norms, final weights and Adam moments."""
import copy
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


def reference_run(model, tokens, clip, moment_warmup=0, steps=STEPS):
    """torch.optim.AdamW; the first `moment_warmup` steps at LR 0 (they move the moments only)."""
    decay, no_decay = decay_groups(model)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": OPT["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=OPT["lr"], betas=OPT["betas"], eps=OPT["eps"], foreach=False)
    n_windows = (len(tokens) - 1) // T
    losses, lrs, norms = [], [], []
    for step in range(1, moment_warmup + steps + 1):
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
        lr = 0.0 if step <= moment_warmup else schedule("cosine", step - moment_warmup, OPT["lr"], OPT["min_lr"], OPT["warmup"], STEPS)
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
def prepare(tmp_path, c, clip, moment_warmup=0):
    """A random GPT-NeoX as an HF checkpoint, a token shard and a run config starting from them."""
    torch.manual_seed(0)
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
moment_warmup_steps = {moment_warmup}
[schedule]
kind = "cosine"
warmup_steps = {OPT['warmup']}
total_steps = {STEPS}
[train]
log_interval = 1
checkpoint_interval = {moment_warmup or STEPS}
keep_checkpoints = 10
""")
    return model, tokens


def assert_checkpoint_matches(path, model, opt):
    # tolerances ~3x the agreement observed (float32 on both sides, different summation orders):
    # weights 4e-6 absolute, moments 7e-6 of their largest value
    with h5py.File(path, "r") as ck:
        for name, p in model.named_parameters():
            st = opt.state[p]
            np.testing.assert_allclose(ck["model/" + name][:], p.detach().numpy(), atol=1e-5, rtol=0, err_msg=name)
            scale = float(st["exp_avg"].abs().max())
            np.testing.assert_allclose(ck["optimizer/exp_avg/" + name][:], st["exp_avg"].numpy(), atol=2e-5 * scale, rtol=0, err_msg=name)
            scale = float(st["exp_avg_sq"].abs().max())
            np.testing.assert_allclose(ck["optimizer/exp_avg_sq/" + name][:], st["exp_avg_sq"].numpy(), atol=2e-5 * scale, rtol=0, err_msg=name)


@pytest.mark.parametrize("parallel,act,rotary_pct,eps,base,clip", [
    (True, "gelu", 0.25, 1e-5, 10000.0, 0.5), (False, "gelu", 0.5, 1e-5, 10000.0, 0.5),
    (True, "gelu_fast", 1.0, 1e-5, 10000.0, 0.5), (False, "gelu_fast", 0.25, 1e-5, 10000.0, 0.5),
    (True, "gelu", 1.0, 0.3, 10.0, 0.0)])  # LayerNorm eps and rotary base that matter; clipping off
def test_matches_pytorch(tmp_path, parallel, act, rotary_pct, eps, base, clip):
    model, tokens = prepare(tmp_path, model_config(parallel, act, rotary_pct, eps, base), clip)
    rewarm("train", tmp_path / "run.toml")

    opt, losses, lrs, norms = reference_run(model, tokens, clip)
    with h5py.File(tmp_path / "run" / "metrics.h5", "r") as m:
        np.testing.assert_array_equal(m["train/step"][:], np.arange(1, STEPS + 1))
        # losses agree to 1e-7, norms 2e-7 relative
        np.testing.assert_allclose(m["train/loss"][:], losses, rtol=3e-7)
        np.testing.assert_allclose(m["train/lr"][:], lrs, rtol=1e-12)
        np.testing.assert_allclose(m["train/grad_norm"][:], norms, rtol=6e-7)
    if clip > 0:
        assert min(norms) > clip, "the test should exercise clipping"
    with h5py.File(tmp_path / "run" / "checkpoints" / f"step_{STEPS:08d}.h5", "r") as ck:
        assert ck.attrs["step"] == STEPS
    assert_checkpoint_matches(tmp_path / "run" / "checkpoints" / f"step_{STEPS:08d}.h5", model, opt)


def test_moment_warmup_matches_pytorch(tmp_path):
    """optimizer.moment_warmup_steps = N: N steps of torch's AdamW at LR 0 (weights unchanged bit
    for bit, moments accumulated), then the schedule from those moments; stopped inside the
    warmup and resumed, the same run bit for bit."""
    N = 3
    model, tokens = prepare(tmp_path, model_config(True, "gelu", 0.25), 0.5, moment_warmup=N)
    with h5py.File(tmp_path / "init.h5", "r") as ck:
        init = {k: ck["model/" + k][:] for k in ck["model"]}
    rewarm("train", tmp_path / "run.toml")
    warmed = copy.deepcopy(model)
    opt_n = reference_run(warmed, tokens, 0.5, moment_warmup=N, steps=0)[0]
    opt, losses, lrs, norms = reference_run(model, tokens, 0.5, moment_warmup=N)
    with h5py.File(tmp_path / "run" / "metrics.h5", "r") as m:
        np.testing.assert_array_equal(m["train/step"][:], np.arange(1, N + STEPS + 1))
        np.testing.assert_array_equal(m["train/lr"][:N], 0.0)
        np.testing.assert_allclose(m["train/lr"][:], lrs, rtol=1e-12)
        np.testing.assert_allclose(m["train/loss"][:], losses, rtol=3e-7)
        np.testing.assert_allclose(m["train/grad_norm"][:], norms, rtol=6e-7)
    with h5py.File(tmp_path / "run" / "checkpoints" / f"step_{N:08d}.h5", "r") as ck:
        for k, v in init.items():  # the weights, bit for bit; the moments are not zero
            np.testing.assert_array_equal(ck["model/" + k][:], v, err_msg=k)
    assert_checkpoint_matches(tmp_path / "run" / "checkpoints" / f"step_{N:08d}.h5", warmed, opt_n)  # N moment updates
    assert_checkpoint_matches(tmp_path / "run" / "checkpoints" / f"step_{N + STEPS:08d}.h5", model, opt)

    # stopped inside the warmup (step 2 of 3), resumed: the same run, bit for bit
    rewarm("train", tmp_path / "run.toml", "--set", f"run_dir={tmp_path}/split", "--stop-at", "2")
    rewarm("train", tmp_path / "run.toml", "--set", f"run_dir={tmp_path}/split")
    with h5py.File(tmp_path / "run" / "checkpoints" / f"step_{N + STEPS:08d}.h5", "r") as a, \
         h5py.File(tmp_path / "split" / "checkpoints" / f"step_{N + STEPS:08d}.h5", "r") as b:
        for k in init:
            for group in ("model/", "optimizer/exp_avg/", "optimizer/exp_avg_sq/"):
                np.testing.assert_array_equal(a[group + k][:], b[group + k][:], err_msg=group + k)
