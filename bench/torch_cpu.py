"""The PyTorch a CPU user would run instead of rewarm, at the shape of a rewarm config: GPT-NeoX
in plain PyTorch (tests/python/reference.py: the model the tests hold rewarm to, with a fused
query_key_value projection, batched-matmul attention and torch's own GELU, LayerNorm and
cross-entropy), fp32, torch.optim.AdamW (foreach: its fastest CPU form) with weight decay 0.1 on
the matrices and gradient clipping at 1.0. One warm-up step, then --steps timed steps of
global_batch sequences in micro_batch pieces, on --threads threads (torch.set_num_threads).

    /usr/bin/python3 bench/torch_cpu.py bench/gpt2-small-256.toml --steps 3 --threads 2

Prints tokens/s (and writes them as JSON with --json FILE)."""
import argparse
import json
import os
import sys
import time
import tomllib

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from reference import GPTNeoX, decay_groups  # noqa: E402

DEFAULTS = dict(rotary_pct=0.25, rotary_emb_base=10000.0, layer_norm_eps=1e-5, use_parallel_residual=True,
                hidden_act="gelu")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config", help="a rewarm run config (its [model] and [data] shape)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json")
    a = ap.parse_args()
    cfg = tomllib.load(open(a.config, "rb"))
    c = {**DEFAULTS, **{k: v for k, v in cfg["model"].items() if k != "preset"}}
    T, MB = cfg["data"]["seq_len"], cfg["data"]["micro_batch"]
    GB = cfg["data"].get("global_batch", MB)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = GPTNeoX(c)
    decay, no_decay = decay_groups(model)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), foreach=True)
    ids = torch.randint(0, c["vocab_size"], (MB, T + 1))

    def step():
        opt.zero_grad(set_to_none=True)
        for _ in range(GB // MB):
            loss = model(ids[:, :-1], ids[:, 1:]) / (GB // MB)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    secs = (time.perf_counter() - t0) / a.steps
    tps = GB * T / secs
    print(f"torch {torch.__version__}, {a.threads} threads: {tps:.0f} tokens/s ({secs:.3f} s/step)")
    if a.json:
        json.dump({"torch": torch.__version__, "threads": a.threads, "tokens_per_second": tps, "step_seconds": secs},
                  open(a.json, "w"))


if __name__ == "__main__":
    main()
