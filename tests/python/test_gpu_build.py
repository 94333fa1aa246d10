"""The GPU builds on a machine without a GPU (a login node): --version, --help, info, convert,
tokenize and synth work; train, eval and bench stop with one line naming the backend and what
was found. Runs the CUDA build (build-cuda/) with the CUDA toolkit's stub libcuda, which behaves
like a driver with no GPU, and the HIP build (build-hip/) as it is, where those builds exist;
says it skipped otherwise (CI has no Kokkos for them: README "GPU builds" makes them)."""
import json
import os
import subprocess

import numpy as np
import pytest

from helpers import ROOT, tiny_config, write_config, write_safetensors, write_shard
from megatron_format import write_indexed

BUILDS = {"cuda": os.environ.get("REWARM_CUDA_BIN", os.path.join(ROOT, "build-cuda", "src", "rewarm")),
          "hip": os.environ.get("REWARM_HIP_BIN", os.path.join(ROOT, "build-hip", "src", "rewarm"))}
CUDA_STUB = "/usr/local/cuda/lib64/stubs/libcuda.so"


@pytest.fixture(params=sorted(BUILDS))
def gpu_build(request, tmp_path):
    binary = BUILDS[request.param]
    if not os.path.exists(binary):
        pytest.skip(f"no {request.param.upper()} build at {binary} (it needs a Kokkos 4 {request.param.upper()} install)")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    if request.param.startswith("cuda"):
        if not os.path.exists(CUDA_STUB):
            pytest.skip(f"no CUDA stub driver at {CUDA_STUB}")
        (tmp_path / "stub").mkdir()
        os.symlink(CUDA_STUB, tmp_path / "stub" / "libcuda.so.1")
        env["LD_LIBRARY_PATH"] = f"{tmp_path / 'stub'}:{env.get('LD_LIBRARY_PATH', '')}"
    return request.param, binary, env


pytestmark = pytest.mark.may_skip  # CI machines have no GPU Kokkos; the skip is reported


def run(binary, env, *args):
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def test_file_commands_need_no_gpu(gpu_build, tmp_path):
    kind, binary, env = gpu_build
    for args in (["--version"], ["--help"], ["train", "--help"]):
        p = run(binary, env, *args)
        assert p.returncode == 0 and "Kokkos" not in p.stderr, (args, p.stderr)
    # a GPU's peak GEMM is measured at n = 8192 (2048 is some 20 µs there, short of its rate)
    p = run(binary, env, "bench", "--help")
    assert p.returncode == 0 and "--gemm-size INT=8192 " in p.stdout, p.stdout
    assert run(binary, env, "synth", "--out", tmp_path / "s.h5", "--vocab", 13, "--tokens", 3000).returncode == 0
    p = run(binary, env, "info", tmp_path / "s.h5")
    assert p.returncode == 0 and "token shard, 3000 tokens" in p.stdout
    # convert hf and back
    c = dict(vocab_size=13, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=12,
             rotary_pct=0.5, max_position_embeddings=32, model_type="gpt_neox")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps(c))
    shapes = {"gpt_neox.embed_in.weight": (13, 8), "embed_out.weight": (13, 8), "gpt_neox.final_layer_norm.weight": (8,),
              "gpt_neox.final_layer_norm.bias": (8,)}
    pre = "gpt_neox.layers.0."
    for n, s in [("input_layernorm.weight", (8,)), ("input_layernorm.bias", (8,)), ("post_attention_layernorm.weight", (8,)),
                 ("post_attention_layernorm.bias", (8,)), ("attention.query_key_value.weight", (24, 8)),
                 ("attention.query_key_value.bias", (24,)), ("attention.dense.weight", (8, 8)), ("attention.dense.bias", (8,)),
                 ("mlp.dense_h_to_4h.weight", (12, 8)), ("mlp.dense_h_to_4h.bias", (12,)),
                 ("mlp.dense_4h_to_h.weight", (8, 12)), ("mlp.dense_4h_to_h.bias", (8,))]:
        shapes[pre + n] = s
    write_safetensors(hf / "model.safetensors", {k: np.ones(s, np.float32) for k, s in shapes.items()})
    assert run(binary, env, "convert", "hf", hf, "--out", tmp_path / "c.h5").returncode == 0
    assert run(binary, env, "convert", "to-hf", tmp_path / "c.h5", "--out", tmp_path / "back").returncode == 0
    write_indexed(str(tmp_path / "meg"), [[[1, 2, 3], [4, 5]], [[6, 7, 8, 9]]])
    p = run(binary, env, "convert", "megatron", tmp_path / "meg", "--out", tmp_path / "meg.h5", "--quiet")
    assert p.returncode == 0 and "9 tokens" in p.stdout, p.stderr
    (tmp_path / "in.jsonl").write_text('{"text": "hello"}\n')
    byte_level_tokenizer(tmp_path / "tokenizer.json")
    p = run(binary, env, "tokenize", "--tokenizer", tmp_path / "tokenizer.json", "--jsonl", tmp_path / "in.jsonl",
            "--out", tmp_path / "t.h5")
    assert p.returncode == 0, p.stderr
    # plan starts no device: a GPU build plans on a login node, bf16 in 2 bytes where cuBLAS stores
    # it (the HIP build here has no rocBLAS: Kokkos Kernels' GEMM on the float emulation, 4)
    cfg = tiny_config(tmp_path / "run", tmp_path / "s.h5", [tmp_path / "s.h5"])
    cfg["precision"] = {"gemm": "bf16"}
    cfg = write_config(tmp_path / "plan.toml", cfg)
    p = run(binary, env, "plan", cfg, "--ranks", 2, "--json", tmp_path / "plan.json")
    assert p.returncode == 0 and "zero 3" in p.stdout, p.stderr
    assert json.loads((tmp_path / "plan.json").read_text())["bf16_bytes"] == (2 if kind.startswith("cuda") else 4)


def byte_level_tokenizer(path):
    """The smallest byte-level BPE tokenizer.json: GPT-2's 256 byte symbols, no merges, <|endoftext|>."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    symbols, extra = {}, 0
    for b in range(256):
        symbols[b] = chr(b) if b in printable else chr(256 + extra)
        extra += b not in printable
    vocab = {symbols[b]: b for b in range(256)}
    j = {"model": {"type": "BPE", "vocab": vocab, "merges": []},
         "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
         "added_tokens": [{"id": 256, "content": "<|endoftext|>", "normalized": False}]}
    path.write_text(json.dumps(j))


def test_computing_commands_fail_with_one_line(gpu_build, tmp_path):
    kind, binary, env = gpu_build
    write_shard(tmp_path / "train.h5", np.arange(500) % 13, 13)
    cfg = write_config(tmp_path / "run.toml", tiny_config(tmp_path / "run", tmp_path / "train.h5", [tmp_path / "train.h5"]))
    for args in (["train", cfg], ["bench", cfg], ["eval", cfg, "--checkpoint", tmp_path / "none.h5"]):
        p = run(binary, env, *args)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        assert p.returncode == 1 and len(lines) == 1, (args, p.returncode, p.stderr)
        assert f"computes on {'Cuda' if kind.startswith('cuda') else 'HIP'} and found no usable GPU" in lines[0], lines[0]
    assert not (tmp_path / "run").exists()
