"""Bad input: one clear error line naming the file/key/value, exit status != 0, and nothing
overwritten."""
import json
import os

import numpy as np
import pytest

from helpers import rewarm, write_safetensors, write_shard, write_toml

BASE = """
run_dir = "{d}/run"
[model]
vocab_size = 13
hidden_size = 16
num_hidden_layers = 1
num_attention_heads = 2
intermediate_size = 24
max_position_embeddings = 32
[data]
seq_len = 16
micro_batch = 2
global_batch = 4
[[data.train]]
path = "{d}/train.h5"
[optimizer]
lr = 1e-2
[schedule]
kind = "constant"
total_steps = 4
[train]
checkpoint_interval = 1
"""


@pytest.fixture
def d(tmp_path):
    write_shard(tmp_path / "train.h5", np.arange(200) % 13, 13)
    return tmp_path


def fails(*args, expect):
    p = rewarm(*args, check=False)
    assert p.returncode != 0, p.stdout
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, p.stderr
    for e in expect:
        assert e in lines[0], lines[0]
    return lines[0]


def train_fails(d, extra_sets=(), expect=(), text=None):
    write_toml(d / "run.toml", text if text is not None else BASE.format(d=d))
    sets = [a for s in extra_sets for a in ("--set", s)]
    return fails("train", d / "run.toml", *sets, expect=expect)


def test_unknown_key_suggests_close_match(d):
    train_fails(d, ["optimizer.weight_decy=0.1"], ["run.toml", "unknown key optimizer.weight_decy", "did you mean optimizer.weight_decay?"])


def test_wrong_type(d):
    train_fails(d, ['data.micro_batch="two"'], ["data.micro_batch must be an integer, not a string"])


def test_missing_files(d):
    fails("train", d / "nope.toml", expect=["nope.toml: cannot open"])
    train_fails(d, [f"data.train.0.path={d}/missing.h5"], ["missing.h5: cannot open"])
    fails("convert", "hf", d / "no_model", "--out", d / "x.h5", expect=["no_model"])


def test_token_id_beyond_vocab(d):
    write_shard(d / "train.h5", np.arange(200) % 20, 20)
    train_fails(d, [], ["train.h5", "is >= vocab_size 13"])


def test_not_a_shard(d):
    (d / "fake.h5").write_text("just text")
    train_fails(d, [f"data.train.0.path={d}/fake.h5"], ["fake.h5: not an HDF5 file"])


def test_seq_len_and_batch_checks(d):
    train_fails(d, ["data.seq_len=64"], ["data.seq_len = 64 exceeds model.max_position_embeddings = 32"])
    train_fails(d, ["data.global_batch=5"], ["data.global_batch = 5 is not a multiple of data.micro_batch = 2"])


def test_nan_loss_stops_and_keeps_checkpoints(d):
    line = train_fails(d, ["optimizer.lr=1e38"], ["became NaN at step 2", "earlier checkpoints are kept"])
    assert os.listdir(d / "run" / "checkpoints") == ["step_00000001.h5"]


def hf_dir(d, vocab=13, hidden=16, tensors_hidden=16, dtype="F32"):
    hf = d / "hf"
    hf.mkdir(exist_ok=True)
    c = dict(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
             rotary_pct=0.25, max_position_embeddings=32, layer_norm_eps=1e-5, use_parallel_residual=True,
             hidden_act="gelu", model_type="gpt_neox")
    (hf / "config.json").write_text(json.dumps(c))
    h, i, v = tensors_hidden, 24, vocab
    shapes = {"gpt_neox.embed_in.weight": (v, h), "embed_out.weight": (v, h),
              "gpt_neox.final_layer_norm.weight": (h,), "gpt_neox.final_layer_norm.bias": (h,)}
    p = "gpt_neox.layers.0."
    for ln in ("input_layernorm", "post_attention_layernorm"):
        shapes[p + ln + ".weight"] = shapes[p + ln + ".bias"] = (h,)
    shapes.update({p + "attention.query_key_value.weight": (3 * h, h), p + "attention.query_key_value.bias": (3 * h,),
                   p + "attention.dense.weight": (h, h), p + "attention.dense.bias": (h,),
                   p + "mlp.dense_h_to_4h.weight": (i, h), p + "mlp.dense_h_to_4h.bias": (i,),
                   p + "mlp.dense_4h_to_h.weight": (h, i), p + "mlp.dense_4h_to_h.bias": (h,)})
    rng = np.random.default_rng(0)
    write_safetensors(hf / "model.safetensors", {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}, dtype)
    return hf


def test_convert_rejects_bad_safetensors_and_keeps_old_output(d):
    hf = hf_dir(d)
    out = d / "ckpt.h5"
    out.write_bytes(b"previous output")
    st = hf / "model.safetensors"
    good = st.read_bytes()
    st.write_bytes(good[: len(good) // 2])  # truncated data
    fails("convert", "hf", hf, "--out", out, expect=["model.safetensors", "past the data"])
    st.write_bytes((10 ** 9).to_bytes(8, "little") + good[8:])  # lying header length
    fails("convert", "hf", hf, "--out", out, expect=["model.safetensors", "exceeds the file size"])
    st.write_bytes(good[:5])
    fails("convert", "hf", hf, "--out", out, expect=["shorter than its 8-byte header length"])
    assert out.read_bytes() == b"previous output"
    assert not os.path.exists(str(out) + ".tmp")


def test_convert_rejects_shape_mismatch(d):
    hf_dir(d, hidden=16, tensors_hidden=8)
    fails("convert", "hf", d / "hf", "--out", d / "c.h5", expect=["model.safetensors", "wrong shape", "config.json"])


def test_checkpoint_shape_mismatch_with_run_config(d):
    hf_dir(d)
    rewarm("convert", "hf", d / "hf", "--out", d / "c.h5")
    text = BASE.format(d=d) + f'[init]\nfrom = "{d}/c.h5"\n'
    train_fails(d, ["model.hidden_size=32"], ["c.h5", "has shape [13,16] but the model config needs [13,32]"], text=text)
    train_fails(d, ['init.load="full"'], ["c.h5: has no optimizer state"], text=text)
