"""The baseline a user would pick instead of rewarm, at the shape of one `rewarm bench` run:
Hugging Face transformers' GPTNeoXForCausalLM (whatever version is installed), random init,
bf16 autocast, PyTorch's scaled-dot-product attention, AdamW (0.9, 0.95) with weight decay 0.1
(fused on a GPU), gradient clipping at 1.0; one warm-up step, then `--steps` timed steps of one
micro-batch each (bench/gpu/run.sh runs rewarm with global_batch = micro_batch).

    python3 bench/gpu/torch_baseline.py OUT/bench-pythia-160m-bf16.json --out OUT/torch-....json

Reads the model (rewarm's HF config.json), seq_len and micro_batch from rewarm's bench JSON and
writes tokens/s and peak memory. A micro-batch too big for the GPU is reported as such
("out of memory": true), not as a failure."""
import argparse
import json
import sys
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench_json", help="a `rewarm bench --json` file: the shape to train")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    bench = json.load(open(a.bench_json))
    B, T = int(bench["micro_batch"]), int(bench["seq_len"])
    try:
        import transformers
        from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    except ImportError as e:
        sys.exit(f"torch_baseline: no Hugging Face transformers here ({e})")

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    hf = {k: v for k, v in bench["model"].items() if k not in ("architectures", "torch_dtype", "use_cache")}
    # PyTorch's scaled_dot_product_attention (flash attention on a GPU)
    config = GPTNeoXConfig(**hf, use_cache=False, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(config).to(device)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]  # GPT-NeoX: no decay on biases, LayerNorms
    rest = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if cuda else {}))
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, config.vocab_size, (a.steps + 1, B, T), generator=gen).to(device)

    def step(x):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    res = {"transformers": transformers.__version__, "torch": torch.__version__,
           "device": torch.cuda.get_device_name() if cuda else "cpu", "micro_batch": B, "seq_len": T,
           "parameters": sum(p.numel() for p in model.parameters()),
           "attention": getattr(model.config, "_attn_implementation", "?"), "out_of_memory": False}
    try:
        step(ids[0])  # warm-up: kernels chosen, the optimizer's state allocated
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for s in range(a.steps):
            loss = step(ids[s + 1])
        if cuda:
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        res.update(tokens_per_second=a.steps * B * T / secs, step_seconds=secs / a.steps, loss=float(loss),
                   peak_memory_bytes=torch.cuda.max_memory_allocated() if cuda else None)
    except torch.cuda.OutOfMemoryError if cuda else MemoryError:
        res["out_of_memory"] = True
    json.dump(res, open(a.out, "w"), indent=2)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
