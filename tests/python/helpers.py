"""Shared helpers for the end-to-end tests: run the rewarm binary, write token shards and
HF-style safetensors without any rewarm code."""
import json
import os
import struct
import subprocess

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REWARM = os.environ.get("REWARM_BIN", os.path.join(ROOT, "build", "src", "rewarm"))


def rewarm(*args, cwd=None, check=True, env=None):
    """Runs rewarm; returns the CompletedProcess (stdout/stderr as text). `env`: extra variables."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **(env or {}))
    p = subprocess.run([REWARM, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"rewarm {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def write_shard(path, tokens, vocab_size, eod_token=0):
    tokens = np.asarray(tokens)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "rewarm-tokens"
        f.attrs["format_version"] = 1
        f.attrs["vocab_size"] = vocab_size
        f.attrs["eod_token"] = eod_token
        f.attrs["tokenizer"] = "test"
        f.attrs["source"] = "pytest"
        f.create_dataset("tokens", data=tokens.astype(np.uint16 if vocab_size <= 65536 else np.uint32), chunks=True)


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: dict name -> numpy float32 array. dtype F32, F16 or BF16 (truncation-free rounding via torch)."""
    import torch

    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        if dtype == "F16":
            raw = t.half().numpy().tobytes()
        elif dtype == "BF16":
            raw = t.bfloat16().view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_toml(path, text):
    with open(path, "w") as f:
        f.write(text)


def toml_text(cfg):
    """A run config dict as TOML: scalars first, then [tables] and [[arrays of tables]]."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))

    def table(t, name, out):
        for k, v in t.items():
            if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict)):
                out.append(f"{k} = {value(v)}")
        for k, v in t.items():
            full = f"{name}.{k}" if name else k
            if isinstance(v, dict):
                out.append(f"[{full}]")
                table(v, full, out)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    out.append(f"[[{full}]]")
                    table(item, full, out)
        return out

    return "\n".join(table(cfg, "", [])) + "\n"


def tiny_config(run_dir, train_sets, eval_sets=(), layers=2, **sections):
    """The tests' tiny run (GPT-NeoX with vocab 13, hidden 16) as a dict. `train_sets` and
    `eval_sets` are shard paths (or dicts of [[data.train]]/[[data.eval]] keys); `sections`
    update tables, e.g. schedule={"total_steps": 4}."""
    as_set = lambda s: dict(s) if isinstance(s, dict) else {"path": str(s)}
    cfg = {
        "run_dir": str(run_dir),
        "model": {"vocab_size": 13, "hidden_size": 16, "num_hidden_layers": layers, "num_attention_heads": 2,
                  "intermediate_size": 24, "max_position_embeddings": 32},
        "data": {"seq_len": 16, "micro_batch": 2, "global_batch": 4,
                 "train": [as_set(s) for s in (train_sets if isinstance(train_sets, (list, tuple)) else [train_sets])],
                 "eval": [as_set(s) for s in eval_sets]},
        "optimizer": {"lr": 1e-2},
        "schedule": {"kind": "cosine", "warmup_steps": 2, "total_steps": 8},
        "train": {"log_interval": 1},
    }
    for name, update in sections.items():
        cfg[name] = {**cfg.get(name, {}), **update} if isinstance(update, dict) else update
    if not cfg["data"]["eval"]:
        del cfg["data"]["eval"]
    return cfg


def write_config(path, cfg):
    write_toml(path, toml_text(cfg))
    return path


def write_task(path, examples, vocab=13):
    """examples: (context ids, [choice ids...], [choice byte lengths...], answer), as docs/formats.md says."""
    ctx, ctx_off, ch, ch_off, ex_ch, nbytes, ans = [], [0], [], [0], [0], [], []
    for context, choices, lengths, answer in examples:
        ctx += context
        ctx_off.append(len(ctx))
        for c, n in zip(choices, lengths):
            ch += c
            ch_off.append(len(ch))
            nbytes.append(n)
        ex_ch.append(ex_ch[-1] + len(choices))
        ans.append(answer)
    with h5py.File(path, "w") as f:
        f.attrs.update(format="rewarm-task", format_version=1, vocab_size=vocab, tokenizer="test", source="pytest")
        for name, v, t in [("context_tokens", ctx, np.uint32), ("context_offsets", ctx_off, np.int64),
                           ("choice_tokens", ch, np.uint32), ("choice_offsets", ch_off, np.int64),
                           ("choice_bytes", nbytes, np.int64), ("example_choices", ex_ch, np.int64),
                           ("answer", ans, np.int64)]:
            f.create_dataset(name, data=np.array(v, dtype=t))
