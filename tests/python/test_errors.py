"""Bad input: one clear error line naming the file/key/value, exit status != 0, and nothing
overwritten."""
import json
import os

import numpy as np
import pytest

from helpers import rewarm, tiny_config, write_config, write_safetensors, write_shard


def base_config(d, **sections):
    """One layer, constant LR, a checkpoint every step: the runs these tests break."""
    sections.setdefault("schedule", {"kind": "constant", "warmup_steps": 0, "total_steps": 4})
    sections.setdefault("train", {"checkpoint_interval": 1})
    return tiny_config(d / "run", d / "train.h5", layers=1, **sections)


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


def train_fails(d, extra_sets=(), expect=(), cfg=None):
    write_config(d / "run.toml", cfg if cfg is not None else base_config(d))
    sets = [a for s in extra_sets for a in ("--set", s)]
    return fails("train", d / "run.toml", *sets, expect=expect)


def test_unknown_key_suggests_close_match(d):
    train_fails(d, ["optimizer.weight_decy=0.1"],
                ["--set optimizer.weight_decy: unknown key optimizer.weight_decy", "did you mean optimizer.weight_decay?"])


def test_wrong_type(d):
    train_fails(d, ['data.micro_batch="two"'], ["data.micro_batch must be an integer, not a string"])


def test_missing_files(d):
    fails("train", d / "nope.toml", expect=["nope.toml: cannot open"])
    train_fails(d, [f"data.train.0.path={d}/missing.h5"], ["missing.h5: cannot open"])
    fails("convert", "hf", d / "no_model", "--out", d / "x.h5", expect=["no_model"])


def test_token_id_beyond_vocab(d):
    write_shard(d / "train.h5", np.arange(200) % 20, 20)
    train_fails(d, [], ["train.h5", "vocab_size 20 (data.train[0]) exceeds the model's vocab_size 13"])
    write_shard(d / "train.h5", np.arange(200) % 20, 13)  # a shard whose ids break its own vocab_size
    train_fails(d, [], ["train.h5", "token id 13 at position 13 is >= vocab_size 13"])


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
    cfg = base_config(d, init={"from": str(d / "c.h5")})
    train_fails(d, ["model.hidden_size=32"], ["run.toml", "model.hidden_size = 32 but the checkpoint has 16", "c.h5"], cfg=cfg)
    train_fails(d, ['init.load="full"'], ["c.h5: has no optimizer state"], cfg=cfg)


def no_work_done(d):
    """Nothing trained, evaluated or written: the run failed before its first step."""
    assert not (d / "run" / "metrics.h5").exists()
    assert not (d / "run" / "checkpoints").exists() or not os.listdir(d / "run" / "checkpoints")


@pytest.mark.parametrize("case", ["missing", "not_hdf5", "too_short", "vocab", "max_sequences"])
def test_every_eval_shard_is_checked_before_step_1(d, case):
    val = d / "val.h5"
    expect = {"missing": "val.h5: cannot open", "not_hdf5": "val.h5: not an HDF5 file",
              "too_short": "has 10 tokens, no window of seq_len + 1 = 17 (data.eval[1])",
              "vocab": "vocab_size 99 (data.eval[1]) exceeds the model's vocab_size 13",
              "max_sequences": "data.eval[1].max_sequences = 50 but the shard has only 12 windows at seq_len 16"}[case]
    if case == "not_hdf5":
        val.write_text("not a shard")
    elif case == "too_short":
        write_shard(val, np.arange(10) % 13, 13)
    elif case == "vocab":
        write_shard(val, np.arange(200) % 13, 99)
    elif case == "max_sequences":
        write_shard(val, np.arange(200) % 13, 13)
    write_shard(d / "good.h5", np.arange(200) % 13, 13)
    evals = [{"name": "good", "path": str(d / "good.h5")}, {"name": "bad", "path": str(val), "max_sequences": 50}]
    cfg = base_config(d, train={"eval_at_start": False, "eval_interval": 0, "checkpoint_interval": 1})
    cfg["data"]["eval"] = evals
    train_fails(d, [], [expect], cfg=cfg)
    no_work_done(d)


def test_init_and_run_dir_are_checked_before_step_1(d):
    train_fails(d, [f"init.from={d}/no_such.h5"], ["no_such.h5: cannot open"])
    (d / "a_file").write_text("")
    train_fails(d, [f"run_dir={d}/a_file/run"], ["a_file/run: cannot create run_dir: Not a directory"])
    no_work_done(d)


def trained_checkpoint(d, **model):
    """A checkpoint of a 1-step run of the tiny model with `model` keys."""
    cfg = base_config(d, schedule={"kind": "constant", "warmup_steps": 0, "total_steps": 1})
    cfg["model"].update(model)
    cfg["run_dir"] = str(d / "source")
    write_config(d / "source.toml", cfg)
    rewarm("train", d / "source.toml")
    return d / "source" / "checkpoints" / "step_00000001.h5"


def test_config_never_overrides_the_checkpoints_architecture(d):
    ck = trained_checkpoint(d, use_parallel_residual=True, rotary_pct=0.5, hidden_act="gelu")
    cfg = base_config(d, init={"from": str(ck)})
    cfg["model"].update(use_parallel_residual=False, rotary_pct=0.25, hidden_act="gelu_fast")
    line = train_fails(d, [], ["run.toml", str(ck), "model.rotary_pct = 0.25 but the checkpoint has 0.5",
                               "model.use_parallel_residual = false but the checkpoint has true",
                               'model.hidden_act = "gelu_fast" but the checkpoint has "gelu"'], cfg=cfg)
    no_work_done(d)
    for key, value in [("layer_norm_eps", 1e-3), ("rotary_emb_base", 500.0), ("max_position_embeddings", 64)]:
        cfg = base_config(d, init={"from": str(ck)})
        cfg["model"].update({key: value, "rotary_pct": 0.5})
        train_fails(d, [], [f"model.{key} = "], cfg=cfg)
    # eval --checkpoint, and a resumed run, check the same way
    cfg = base_config(d)
    cfg["model"]["rotary_pct"] = 0.25
    cfg["data"]["eval"] = [{"path": str(d / "train.h5")}]
    write_config(d / "e.toml", cfg)
    fails("eval", d / "e.toml", "--checkpoint", ck, expect=["model.rotary_pct = 0.25 but the checkpoint has 0.5"])
    # without [model] the checkpoint supplies the architecture
    cfg = base_config(d, init={"from": str(ck)})
    del cfg["model"]
    write_config(d / "run.toml", cfg)
    rewarm("train", d / "run.toml")
    out = rewarm("info", d / "run" / "checkpoints" / "step_00000004.h5").stdout
    assert "parallel residual, gelu" in out


def test_resume_refuses_a_changed_config(d):
    write_config(d / "run.toml", base_config(d))
    rewarm("train", d / "run.toml", "--stop-at", 2)
    line = fails("train", d / "run.toml", "--set", "optimizer.lr=0.02", "--set", "data.seed=7",
                 expect=["run.toml: resuming", "step_00000002.h5", "with a changed config: data.seed: 1234 -> 7, "
                         "optimizer.lr: 0.01 -> 0.02", "may change only run_dir, parallel, precision.attention, memory, data.micro_batch, data.eval"])
    fails("train", d / "run.toml", "--set", "model.rotary_pct=0.5", expect=["model.rotary_pct = 0.5 but the checkpoint has 0.25"])
    fails("train", d / "run.toml", "--stop-at", 2, expect=["--stop-at 2: is not after step 2, where this run resumes"])
    fails("train", d / "run.toml", "--stop-at", 1, expect=["--stop-at 1: is not after step 2"])
    assert sorted(os.listdir(d / "run" / "checkpoints")) == ["step_00000001.h5", "step_00000002.h5"]
    # what may change does not stop it
    p = rewarm("train", d / "run.toml", "--set", "train.log_interval=2", "--set", "train.keep_checkpoints=5",
               "--set", 'precision.attention="gemm"')  # e.g. resumed where there is no cuDNN
    assert "resuming from" in p.stderr
    assert sorted(os.listdir(d / "run" / "checkpoints"))[-1] == "step_00000004.h5"


def test_stop_at_zero(d):
    write_config(d / "run.toml", base_config(d))
    fails("train", d / "run.toml", "--stop-at", 0, expect=["--stop-at 0: must be a step >= 1"])
    no_work_done(d)


def test_help_is_rewarms_own():
    """--help prints rewarm's help (Kokkos starts only in train, eval and bench, after parsing)."""
    for args in (["--help"], ["train", "--help"], ["sweep", "--help"]):
        p = rewarm(*args)
        assert "Usage: rewarm" in p.stdout and "--kokkos-help" not in p.stdout and "Kokkos command line" not in p.stdout
        assert p.stderr == ""
    assert "Exit status: 0 when the run is done" in rewarm("train", "--help").stdout


@pytest.mark.parametrize("args,expect", [
    (["trian", "run.toml"], "unknown command 'trian' (did you mean train?); `rewarm --help` says more"),
    ([], "a command is required; `rewarm --help` says more"),
    (["train", "run.toml", "--stopat", "3"], "unknown option --stopat (did you mean --stop-at?); `rewarm train --help`"),
    (["train", "run.toml", "--stop-at", "abc"], "--stop-at = abc; `rewarm train --help` says more"),
    (["convert", "to_hf", "c.h5"], "unknown command 'to_hf' (did you mean to-hf?); `rewarm convert --help`"),
    (["sweep", "s.toml", "--lsit"], "unknown option --lsit (did you mean --list?)"),
    (["info"], "file is required; `rewarm info --help` says more"),
    (["synth", "--out", "x.h5", "--weights", "0.5,-1"], "synth: every --weights entry must be finite and >= 0"),
    (["synth", "--out", "x.h5", "--weights", "0,0"], "synth: --weights must not all be 0"),
    (["synth", "--out", "x.h5", "--vocab", "8", "--weights", "1", "--private", "8"], "synth: --private must lie in [0, vocab)"),
    (["synth", "--out", "x.h5", "--weights", "1", "--doc-length", "0.5"], "synth: --doc-length must be >= 1"),
    (["synth", "--out", "x.h5", "--private", "2"], "--private requires --weights"),
])
def test_command_line_mistakes_are_one_line_with_status_1(args, expect):
    p = rewarm(*args, check=False)
    assert p.returncode == 1 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rewarm: error: ") and expect in lines[0], p.stderr
