"""rewarm convert hf (single file, sharded index, F32/F16/BF16, old Pythia buffers) and
convert to-hf (bit-exact F32 round trip), with rewarm eval against the PyTorch oracle."""
import json
import struct

import h5py
import numpy as np
import pytest
import torch

from helpers import rewarm, write_safetensors, write_shard, write_toml
from reference import GPTNeoX, hf_config

C = dict(vocab_size=29, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=40,
         rotary_pct=0.25, rotary_emb_base=10000.0, max_position_embeddings=64, layer_norm_eps=1e-5,
         use_parallel_residual=True, hidden_act="gelu")


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], raw[8 + n + b : 8 + n + e])
    return out


def make_model():
    torch.manual_seed(3)
    m = GPTNeoX(C)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return m


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_sharded_checkpoint_with_old_buffers(tmp_path, dtype):
    m = make_model()
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    names = sorted(sd)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    extra = {"gpt_neox.layers.0.attention.masked_bias": np.array(-1e9, dtype=np.float32),
             "gpt_neox.layers.0.attention.rotary_emb.inv_freq": np.ones(1, dtype=np.float32),
             "gpt_neox.layers.1.attention.bias": np.ones((1, 1, 4, 4), dtype=np.float32)}
    weight_map = {}
    for i, (fname, keys) in enumerate(shards.items()):
        tensors = {k: sd[k] for k in keys}
        if i == 0:
            tensors.update(extra)
        write_safetensors(tmp_path / fname, tensors, dtype)
        weight_map.update({k: fname for k in tensors})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (tmp_path / "config.json").write_text(json.dumps(hf_config(C)))
    rewarm("convert", "hf", tmp_path, "--out", tmp_path / "c.h5")
    cast = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f.attrs["format"] == "rewarm-checkpoint" and f.attrs["step"] == 0
        assert sorted(f["model"].keys()) == names
        for k in names:
            expect = torch.from_numpy(sd[k]).to(cast).float().numpy()
            np.testing.assert_array_equal(f["model/" + k][:], expect, err_msg=k)


def test_round_trip_is_bit_exact_and_eval_matches_pytorch(tmp_path):
    m = make_model()
    hf = tmp_path / "hf"
    hf.mkdir()
    write_safetensors(hf / "model.safetensors", {k: v.numpy() for k, v in m.state_dict().items()})
    (hf / "config.json").write_text(json.dumps(hf_config(C)))
    rewarm("convert", "hf", hf / "model.safetensors", "--out", tmp_path / "c.h5")
    rewarm("convert", "to-hf", tmp_path / "c.h5", "--out", tmp_path / "back")
    a, b = read_safetensors(hf / "model.safetensors"), read_safetensors(tmp_path / "back" / "model.safetensors")
    assert a == b
    assert "run: none (converted, not trained)" in rewarm("info", tmp_path / "c.h5").stdout
    cfg = json.loads((tmp_path / "back" / "config.json").read_text())
    assert cfg["architectures"] == ["GPTNeoXForCausalLM"] and cfg["hidden_size"] == 16 and not cfg["tie_word_embeddings"]
    rewarm("convert", "to-hf", tmp_path / "c.h5", "--out", tmp_path / "bf16", "--dtype", "bf16")
    bf = read_safetensors(tmp_path / "bf16" / "model.safetensors")
    assert all(v[0] == "BF16" for v in bf.values())

    # rewarm eval on the converted weights equals the oracle's loss on the same windows
    T, n = 32, 6
    tokens = np.random.default_rng(5).integers(0, C["vocab_size"], size=n * T + 1)
    write_shard(tmp_path / "val.h5", tokens, C["vocab_size"])
    write_toml(tmp_path / "e.toml", f"""
[data]
seq_len = {T}
micro_batch = 4
global_batch = 4
[[data.train]]
path = "{tmp_path}/val.h5"
[[data.eval]]
name = "val"
path = "{tmp_path}/val.h5"
max_sequences = 5
[schedule]
total_steps = 1
""")
    out = rewarm("eval", tmp_path / "e.toml", "--checkpoint", tmp_path / "c.h5").stdout.split()
    windows = torch.tensor(np.array([tokens[k * T : k * T + T + 1] for k in range(5)], dtype=np.int64))
    with torch.no_grad():
        ref = m(windows[:, :-1], windows[:, 1:]).item()
    assert out[0] == "val"
    assert float(out[2]) == pytest.approx(ref, rel=1e-5)
