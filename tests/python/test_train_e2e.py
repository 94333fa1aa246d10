"""End-to-end training: learning to the known entropy floor, exact resume, init.load modes,
eval and info."""
import os
import re
import h5py
import numpy as np
import pytest

from helpers import ROOT, rewarm, tiny_config, write_config


def tiny(d, run):
    """Two layers, cosine LR with warmup, 8 steps, an eval set, a checkpoint every 4 steps."""
    return tiny_config(d / run, d / "train.h5", [{"name": "val", "path": str(d / "val.h5"), "max_sequences": 5}],
                       data={"shuffle": True}, train={"eval_interval": 3, "log_interval": 1, "checkpoint_interval": 4})


def write_tiny(d, run, **updates):
    cfg = tiny(d, run)
    for section, keys in updates.items():
        cfg[section] = {**cfg.get(section, {}), **keys}
    return write_config(d / f"{run}.toml", cfg)


def make_data(d, vocab=13):
    rewarm("synth", "--out", d / "train.h5", "--vocab", vocab, "--tokens", 5000, "--stream-seed", 2)
    rewarm("synth", "--out", d / "val.h5", "--vocab", vocab, "--tokens", 1000, "--stream-seed", 3)


def read_all(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        out["@step"] = f.attrs["step"]
    return out


def assert_identical(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.long_numbers
def test_learns_to_the_entropy_floor(tmp_path):
    rewarm("synth", "--out", tmp_path / "train.h5", "--vocab", 8, "--decay", 0.5, "--tokens", 2000000, "--stream-seed", 2)
    p = rewarm("synth", "--out", tmp_path / "val.h5", "--vocab", 8, "--decay", 0.5, "--tokens", 100000, "--stream-seed", 3)
    with h5py.File(tmp_path / "val.h5", "r") as f:
        entropy = f.attrs["entropy_rate"]
    assert abs(entropy - 1.3606) < 1e-4, p.stdout
    rewarm("train", os.path.join(ROOT, "inputs", "demo.toml"), "--set", f"run_dir={tmp_path}/run",
           "--set", f"data.train.0.path={tmp_path}/train.h5", "--set", f"data.eval.0.path={tmp_path}/val.h5",
           "--set", "train.log_interval=50")
    with h5py.File(tmp_path / "run" / "metrics.h5", "r") as m:
        final = m["eval/synth/loss"][-1]
        first = m["eval/synth/loss"][0]
        assert m["eval/synth/step"][0] == 0 and m["eval/synth/step"][-1] == 800
    assert abs(first - np.log(8)) < 0.05  # starts at chance
    # no model beats the entropy rate on held-out data: a loss below it means the model sees the
    # tokens it predicts (say, attention that looks ahead)
    assert 0.98 * entropy < final < 1.015 * entropy, f"final eval loss {final} vs entropy rate {entropy}"


def test_resume_is_bit_exact(tmp_path):
    make_data(tmp_path)
    write_tiny(tmp_path, "a")
    write_tiny(tmp_path, "b")
    rewarm("train", tmp_path / "a.toml", "--set", "train.keep_checkpoints=1")
    p = rewarm("train", tmp_path / "b.toml", "--stop-at", 5)
    assert "stopped after step 5" in p.stdout
    ck = tmp_path / "b" / "checkpoints"
    assert sorted(os.listdir(ck)) == ["step_00000004.h5", "step_00000005.h5"]
    (ck / "step_00000007.h5.tmp").write_bytes(b"a crash while writing")  # must be ignored
    p = rewarm("train", tmp_path / "b.toml")
    assert "resuming from" in p.stderr and "step_00000005.h5" in p.stderr
    final = "checkpoints/step_00000008.h5"
    assert_identical(read_all(tmp_path / "a" / final), read_all(tmp_path / "b" / final))
    with h5py.File(tmp_path / "a" / "metrics.h5", "r") as a, h5py.File(tmp_path / "b" / "metrics.h5", "r") as b:
        np.testing.assert_array_equal(b["train/step"][:], np.arange(1, 9))  # no duplicated steps
        np.testing.assert_array_equal(a["train/loss"][:], b["train/loss"][:])
        np.testing.assert_array_equal(a["eval/val/step"][:], [0, 3, 6, 8])
        np.testing.assert_array_equal(a["eval/val/loss"][:], b["eval/val/loss"][:])
    # keep_checkpoints keeps the newest: 1 in run a, 3 (the default) in run b
    assert os.listdir(tmp_path / "a" / "checkpoints") == ["step_00000008.h5"]
    assert sorted(f for f in os.listdir(ck) if f.endswith(".h5")) == ["step_00000004.h5", "step_00000005.h5", "step_00000008.h5"]


def test_init_load_full_and_weights(tmp_path):
    make_data(tmp_path)
    write_tiny(tmp_path, "a")
    rewarm("train", tmp_path / "a.toml")
    start = tmp_path / "a" / "checkpoints" / "step_00000004.h5"
    # "full": the exact state, so the run ends where run a ended
    write_tiny(tmp_path, "f", init={"from": str(start), "load": "full"})
    rewarm("train", tmp_path / "f.toml")
    assert_identical(read_all(tmp_path / "a" / "checkpoints" / "step_00000008.h5"),
                     read_all(tmp_path / "f" / "checkpoints" / "step_00000008.h5"))
    # "weights": the paper's setup — same weights, fresh optimizer at step 0, eval at step 0 first
    write_tiny(tmp_path, "w", init={"from": str(start), "load": "weights"})
    rewarm("train", tmp_path / "w.toml")
    p = rewarm("eval", tmp_path / "w.toml", "--checkpoint", start)  # the starting weights, evaluated alone
    start_loss = float(p.stdout.split()[2])
    with h5py.File(tmp_path / "w" / "metrics.h5", "r") as m, h5py.File(tmp_path / "a" / "metrics.h5", "r") as a:
        np.testing.assert_array_equal(m["train/step"][:], np.arange(1, 9))
        assert m["eval/val/step"][0] == 0
        assert float(f"{m['eval/val/loss'][0]:.9g}") == start_loss  # step 0 is the checkpoint's model
        assert m["train/lr"][0] == a["train/lr"][0]  # warmup restarts
    with h5py.File(start, "r") as s, h5py.File(tmp_path / "w" / "checkpoints" / "step_00000008.h5", "r") as w:
        assert w.attrs["step"] == 8 and w.attrs["tokens_seen"] == 8 * 4 * 16


def test_eval_and_info(tmp_path):
    make_data(tmp_path)
    write_tiny(tmp_path, "a")
    rewarm("train", tmp_path / "a.toml")
    ck = tmp_path / "a" / "checkpoints" / "step_00000008.h5"
    p = rewarm("eval", tmp_path / "a.toml", "--checkpoint", ck)
    loss = float(p.stdout.split()[2])
    with h5py.File(tmp_path / "a" / "metrics.h5", "r") as m:
        assert loss == float(f"{m['eval/val/loss'][-1]:.9g}")  # the same windows as during training
    out = rewarm("info", tmp_path / "val.h5").stdout
    assert "token shard, 1000 tokens" in out and "entropy_rate" in out
    assert "windows: 1 at seq_len 512, 0 at seq_len 1024, 0 at seq_len 2048" in out
    assert "windows: 62 at seq_len 16, 9 at seq_len 100" in rewarm("info", tmp_path / "val.h5", "--seq-len", 16, "--seq-len", 100).stdout
    out = rewarm("info", ck).stdout
    assert "checkpoint at step 8" in out and "optimizer state yes" in out
    assert "run: {}; cosine lr 0.01 -> 3e-05, warmup 2 of 8 steps; init random (weights)".format(tmp_path / "a") in out
    out = rewarm("info", tmp_path / "a" / "metrics.h5").stdout
    assert "last step 8" in out and "eval val" in out and "/train series: grad_norm loss lr" in out


def test_metrics_readable_while_training(tmp_path):
    """The writer appends in HDF5's SWMR mode: every SWMR read while the run goes on succeeds and
    sees whole rows (a group's rows: its shortest series). HDF5 writes each dataset's new extent
    when its metadata leaves the writer's cache, in no order across datasets, and the writer goes
    on between two reads, so either series may be the longer (docs/formats.md); the rows both
    hold are whole."""
    import subprocess

    from helpers import REWARM

    make_data(tmp_path)
    write_tiny(tmp_path, "a")
    proc = subprocess.Popen([REWARM, "train", tmp_path / "a.toml", "--set", "schedule.total_steps=400",
                             "--set", "train.eval_interval=50"], stdout=subprocess.DEVNULL)
    reads_during_run = 0
    while proc.poll() is None:
        if (tmp_path / "a" / "metrics.h5").exists():
            with h5py.File(tmp_path / "a" / "metrics.h5", "r", swmr=True) as m:
                if "train" in m:
                    steps = m["train/step"][:]
                    loss = m["train/loss"][:]
                    rows = min(len(steps), len(loss))
                    np.testing.assert_array_equal(steps, np.arange(1, len(steps) + 1))
                    assert np.all(np.isfinite(loss[:rows])) and np.all(loss[:rows] > 0)
                    reads_during_run += proc.poll() is None
    assert proc.returncode == 0
    assert reads_during_run > 0
    assert not (tmp_path / "a" / "metrics.h5.tmp").exists()


def test_mixture_with_replay_resumes_exactly_and_logs_counts(tmp_path):
    make_data(tmp_path)
    rewarm("synth", "--out", tmp_path / "up.h5", "--vocab", 13, "--tokens", 3000, "--seed", 9)
    for run in ("a", "b"):
        cfg = tiny(tmp_path, run)
        cfg["data"]["train"] = [{"name": "down", "path": str(tmp_path / "train.h5"), "weight": 0.75},
                                {"name": "up", "path": str(tmp_path / "up.h5"), "weight": 0.25}]
        write_config(tmp_path / f"{run}.toml", cfg)
    rewarm("train", tmp_path / "a.toml")
    rewarm("train", tmp_path / "b.toml", "--stop-at", 3)
    rewarm("train", tmp_path / "b.toml")
    final = "checkpoints/step_00000008.h5"
    assert_identical(read_all(tmp_path / "a" / final), read_all(tmp_path / "b" / final))
    with h5py.File(tmp_path / "a" / "metrics.h5", "r") as m:
        down, up = m["train/samples_down"][:], m["train/samples_up"][:]
        np.testing.assert_array_equal(down + up, 4 * m["train/step"][:])  # global_batch 4 per step
        assert up[-1] == 8 and down[-1] == 24  # 25% of 32 samples
    with h5py.File(tmp_path / "a" / final, "r") as c:
        np.testing.assert_array_equal(c["state/set_samples"][:], [24, 8])


def test_docs_describe_every_object_and_attribute(tmp_path):
    """docs/formats.md names every dataset and attribute that rewarm writes (and the checkpoint's
    parameter names appear in its list)."""
    make_data(tmp_path)
    write_tiny(tmp_path, "a")
    rewarm("train", tmp_path / "a.toml")
    docs = open(os.path.join(ROOT, "docs", "formats.md")).read()
    files = {"shard": tmp_path / "val.h5", "checkpoint": tmp_path / "a" / "checkpoints" / "step_00000008.h5",
             "metrics": tmp_path / "a" / "metrics.h5"}
    for kind, path in files.items():
        with h5py.File(path, "r") as f:
            for a in f.attrs:
                assert f"attribute `{a}`" in docs or f"`{a}`" in docs, (kind, a)
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            for n in names:
                if n.startswith(("model/", "optimizer/")):
                    group, tensor = n.rsplit("/", 1)
                    assert f"`/{group}/<name>`" in docs, n
                    generic = tensor.split(".", 3)[-1] if tensor.startswith("gpt_neox.layers.") else tensor
                    assert generic.rsplit(".", 1)[0] in docs, n
                elif n.startswith("eval/"):
                    assert "`/eval/<set>/" + n.split("/")[-1] + "`" in docs, n
                elif n.startswith("train/samples_"):
                    assert "`/train/samples_<set>`" in docs, n
                else:
                    assert f"`/{n}`" in docs, n


def test_bf16_gemms_track_fp32_within_bf16_precision(tmp_path):
    """precision.gemm = "bf16" (exactly emulated on the CPU): the same run to bf16 accuracy, and
    really rounded; tf32 is refused on a build without NVIDIA tensor cores."""
    make_data(tmp_path)
    steps = {"total_steps": 20}  # the GPU issue's bound: 1e-2 over 20 steps
    write_tiny(tmp_path, "a", schedule=steps)
    write_tiny(tmp_path, "b", precision={"gemm": "bf16"}, schedule=steps)
    rewarm("train", tmp_path / "a.toml")
    rewarm("train", tmp_path / "b.toml")
    with h5py.File(tmp_path / "a" / "metrics.h5", "r") as a, h5py.File(tmp_path / "b" / "metrics.h5", "r") as b:
        assert a.attrs["precision"] == "fp32" and b.attrs["precision"] == "bf16"
        assert len(a["train/loss"]) == 20
        rel = np.abs(b["train/loss"][:] / a["train/loss"][:] - 1)
        assert rel.max() < 1e-2 and rel.max() > 1e-6, rel
        np.testing.assert_allclose(b["eval/val/loss"][:], a["eval/val/loss"][:], rtol=1e-2)
    p = rewarm("train", tmp_path / "a.toml", "--set", 'precision.gemm="tf32"', "--set", f"run_dir={tmp_path}/c", check=False)
    assert p.returncode == 1 and 'precision.gemm = "tf32" needs NVIDIA tensor cores' in p.stderr


def test_which_attention_runs_is_printed_and_recorded_and_fused_fails_here_with_one_line(tmp_path):
    """precision.attention: "auto" takes the GEMM attention on a build without cuDNN and says
    why, at start and in metrics.h5; "fused" is refused before anything is written."""
    make_data(tmp_path)
    write_tiny(tmp_path, "a", precision={"gemm": "bf16"})
    p = rewarm("train", tmp_path / "a.toml")
    line = [l for l in p.stderr.splitlines() if l.startswith("rewarm: attention:")]
    backend = re.search(r"^compute: (\w+)", p.stdout, re.M).group(1)  # Serial or OpenMP
    assert line == [f"rewarm: attention: gemm (auto: this build runs on {backend}, not an NVIDIA GPU "
                    "(cuDNN's fused attention needs a CUDA build with cudnn-frontend))"], p.stderr
    with h5py.File(tmp_path / "a" / "metrics.h5", "r") as f:
        assert f.attrs["attention"] == "gemm"
    assert "attention gemm" in rewarm("info", tmp_path / "a" / "metrics.h5").stdout
    p = rewarm("train", tmp_path / "a.toml", "--set", 'precision.attention="fused"', "--set",
               f"run_dir={tmp_path}/b", check=False)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode == 1 and len(lines) == 1, p.stderr
    assert lines[0] == (f'rewarm: error: {tmp_path}/a.toml: precision.attention = "fused" cannot run here: this build runs '
                        f"on {backend}, not an NVIDIA GPU (cuDNN's fused attention needs a CUDA build with cudnn-frontend)")
    assert not (tmp_path / "b").exists()
    p = rewarm("train", tmp_path / "a.toml", "--set", 'precision.attention="fused"', "--set",
               'precision.gemm="fp32"', "--set", f"run_dir={tmp_path}/b", check=False)
    assert p.returncode == 1 and "cuDNN's fused attention computes in bf16" in p.stderr
    p = rewarm("train", tmp_path / "a.toml", "--set", 'precision.attention="flash"', check=False)
    assert p.returncode == 1 and 'precision.attention = "flash" is not one of auto, fused, gemm' in p.stderr


def test_sigusr1_checkpoints_exits_75_and_resumes_exactly(tmp_path):
    """A job near its time limit gets SIGUSR1 (or SIGTERM): the step finishes, a checkpoint is
    written, the exit status is 75 (requeue), and the rerun ends bit-identical to an unbroken run."""
    import signal
    import subprocess

    from helpers import REWARM

    make_data(tmp_path)
    for run in ("a", "b"):
        write_tiny(tmp_path, run, schedule={"total_steps": 300}, train={"eval_interval": 100, "checkpoint_interval": 1000,
                                                                        "log_interval": 1})
    rewarm("train", tmp_path / "a.toml")
    for sig in (signal.SIGUSR1, signal.SIGTERM):
        proc = subprocess.Popen([REWARM, "train", tmp_path / "b.toml"], stdout=subprocess.PIPE, text=True)
        out = ""
        while not out.endswith("\n") or not out.splitlines()[-1].startswith("train step"):  # it is training
            line = proc.stdout.readline()
            assert line, out
            out += line
        proc.send_signal(sig)
        out += proc.communicate(timeout=60)[0]
        if proc.returncode == 0:  # the run was faster than the signal: nothing to check
            continue
        assert proc.returncode == 75, out
        assert "(signal: time limit near)" in out
        stopped = int(out.split("stopped after step")[1].split()[0])
        assert os.path.exists(tmp_path / "b" / "checkpoints" / f"step_{stopped:08d}.h5")
    rewarm("train", tmp_path / "b.toml")
    final = "checkpoints/step_00000300.h5"
    assert_identical(read_all(tmp_path / "a" / final), read_all(tmp_path / "b" / final))
    with h5py.File(tmp_path / "a" / "metrics.h5", "r") as a, h5py.File(tmp_path / "b" / "metrics.h5", "r") as b:
        np.testing.assert_array_equal(b["train/step"][:], np.arange(1, 301))
        np.testing.assert_array_equal(a["train/loss"][:], b["train/loss"][:])


def catches(pid, *signals):
    """Whether process pid has handlers installed for all these signals (/proc's SigCgt mask)."""
    with open(f"/proc/{pid}/status") as f:
        mask = int(next(l for l in f if l.startswith("SigCgt:")).split()[1], 16)
    return all(mask >> (s - 1) & 1 for s in signals)


def test_a_signal_while_the_run_starts_exits_75_without_a_checkpoint(tmp_path):
    """SLURM may signal a job at any instant, even while it reads its config or loads a
    checkpoint: the run takes the signals first thing, stops before its first step with one line
    and exit status 75 (requeue), and the requeued run goes on as if nothing happened."""
    import signal
    import subprocess
    import time

    from helpers import REWARM

    make_data(tmp_path)
    for run in ("a", "b"):
        write_tiny(tmp_path, run, schedule={"total_steps": 6})
    rewarm("train", tmp_path / "a.toml")
    for sig, resumed in ((signal.SIGTERM, 0), (signal.SIGUSR1, 4)):
        proc = subprocess.Popen([REWARM, "train", tmp_path / "b.toml"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        while not catches(proc.pid, signal.SIGUSR1, signal.SIGTERM):  # main's first statement has run
            assert proc.poll() is None
            time.sleep(0.001)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 75, out + err
        assert out.splitlines()[-1] == f"stopped before step {resumed + 1} (signal: time limit near); " \
                                       "rerun the same command to resume", out
        assert "train step" not in out and err == ("" if not resumed else f"rewarm: resuming from "
                                                   f"{tmp_path}/b/checkpoints/step_{resumed:08d}.h5 (step {resumed})\n")
        steps = sorted(os.listdir(tmp_path / "b" / "checkpoints")) if resumed else []
        assert steps == ([f"step_{resumed:08d}.h5"] if resumed else []), "no new checkpoint"
        if not resumed:
            assert not (tmp_path / "b" / "checkpoints").exists() or not os.listdir(tmp_path / "b" / "checkpoints")
            rewarm("train", tmp_path / "b.toml", "--stop-at", 4)  # a checkpoint to resume from next time
    rewarm("train", tmp_path / "b.toml")
    final = "checkpoints/step_00000006.h5"
    assert_identical(read_all(tmp_path / "a" / final), read_all(tmp_path / "b" / final))
    with h5py.File(tmp_path / "a" / "metrics.h5", "r") as a, h5py.File(tmp_path / "b" / "metrics.h5", "r") as b:
        for k in ("train/step", "train/loss", "eval/val/step", "eval/val/loss"):
            np.testing.assert_array_equal(a[k][:], b[k][:])


def test_log_lines_say_where_the_run_is_and_the_stop_step_is_logged(tmp_path):
    """step of the total, tokens/s and model FLOP/s, elapsed and time left; how long each
    evaluation and checkpoint took; a run stopped between log intervals logs its stop step."""
    import re

    make_data(tmp_path)
    write_tiny(tmp_path, "a", train={"log_interval": 3, "eval_interval": 4, "checkpoint_interval": 4})
    out = rewarm("train", tmp_path / "a.toml", "--stop-at", 5).stdout
    assert re.search(r"^eval  step 0/8 \(0%\) \| val +loss [0-9.]+ \| ppl [0-9.]+ \| [0-9.]+ s$", out, re.M), out
    line = r"^train step {}/8 \({}%\) \| loss [0-9.]+ \| lr [0-9.e+-]+ \| grad_norm [0-9.]+ \| [0-9.]+k? tok/s \| " \
           r"[0-9.e+]+ [GT]FLOP/s \| [0-9ms]+ elapsed \| ETA [0-9hms]+$"
    assert re.search(line.format(3, 37), out, re.M) and re.search(line.format(5, 62), out, re.M), out
    assert re.search(r"^checkpoint step 4 \| .*step_00000004\.h5 \| [0-9.]+ s$", out, re.M), out
    assert re.search(r"^checkpoint step 5 \| .*step_00000005\.h5 \| [0-9.]+ s$", out, re.M), out
    with h5py.File(tmp_path / "a" / "metrics.h5", "r") as m:
        np.testing.assert_array_equal(m["train/step"][:], [3, 5])  # the stop step, between log steps
        tokens_per_step = 4 * 16  # global_batch × seq_len
        np.testing.assert_allclose(m["train/tokens_per_second"][:] * m["train/step_seconds"][:], tokens_per_step)
        assert (m["train/model_flops_per_second"][:] > 0).all()
        assert (m["train/step_seconds"][:] < m["train/seconds"][:]).all()
