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


def rewarm(*args, cwd=None, check=True):
    """Runs rewarm; returns the CompletedProcess (stdout/stderr as text)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
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
