"""Data parallelism under mpirun: one run whatever the rank count (plain and ZeRO-1), resume on
another rank count, evaluation split over ranks, and failures that end every rank quickly."""
import os
import shutil
import signal
import subprocess
import time
import tomllib

import h5py
import numpy as np
import pytest

from helpers import REWARM, rewarm, tiny_config, write_config, write_shard

pytestmark = pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs OpenMPI's mpirun")

MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")


def mpirun(n, *args, check=True, timeout=120, mpmd=None):
    """rewarm on n ranks (mpmd: a second program, `: -n 1 rewarm ...`, for per-rank arguments)."""
    cmd = ["mpirun", "-n", str(n), "--oversubscribe", REWARM, *map(str, args)]
    if mpmd:
        cmd += [":", "-n", "1", REWARM, *map(str, mpmd)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=MPI_ENV, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def config(d, run, **sections):
    """Global batch 8 in micro-batches of 1: 8, 4 or 2 micro-steps per rank on 1, 2 or 4 ranks;
    clipping active; an eval set of 7 windows (not a multiple of the rank count)."""
    sections.setdefault("data", {"micro_batch": 1, "global_batch": 8})
    sections.setdefault("optimizer", {"lr": 1e-2, "grad_clip": 0.3})
    sections.setdefault("train", {"eval_interval": 3, "checkpoint_interval": 3})
    sections.setdefault("schedule", {"total_steps": 6})
    cfg = tiny_config(d / run, d / "train.h5", [{"name": "val", "path": str(d / "val.h5"), "max_sequences": 7}],
                      **sections)
    return write_config(d / f"{run}.toml", cfg)


@pytest.fixture
def d(tmp_path):
    rng = np.random.default_rng(0)
    write_shard(tmp_path / "train.h5", rng.integers(0, 13, 3000), 13)
    write_shard(tmp_path / "val.h5", rng.integers(0, 13, 500), 13)
    return tmp_path


def checkpoint(d, run, step=6):
    with h5py.File(d / run / "checkpoints" / f"step_{step:08d}.h5", "r") as f:
        out = {}
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        out["@world_size"] = f.attrs["world_size"]
        return out


def max_rel_diff(a, b):
    """Largest difference of any tensor relative to that tensor's largest value; 0 when bitwise equal."""
    worst = 0.0
    for k in a:
        if k.startswith(("model/", "optimizer/")):
            scale = max(float(np.max(np.abs(a[k]))), 1e-30)
            worst = max(worst, float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) / scale)
    return worst


def metrics(d, run):
    with h5py.File(d / run / "metrics.h5", "r") as m:
        return {k: m[k][:] for k in ("train/loss", "train/grad_norm", "eval/val/loss")} | {"@ws": m.attrs["world_size"]}


@pytest.mark.long_numbers
def test_rank_counts_and_zero1_give_the_same_run(d):
    # one rank has nothing to overlap: it says nothing about it
    assert "overlap" not in rewarm("train", config(d, "n1", parallel={"overlap": True})).stderr
    runs = {"n2": (2, 0, False), "n4": (4, 0, False), "n2z": (2, 1, False), "n4z": (4, 1, False),
            "n2o": (2, 0, True), "n4o": (4, 0, True), "n2zo": (2, 1, True)}  # o: gradient sums overlapped
    for run, (n, zero, overlap) in runs.items():
        p = mpirun(n, "train", config(d, run, parallel={"zero": zero, "overlap": overlap}))
        assert "train step 6/6" in p.stdout and p.stdout.count("train step 6/6") == 1  # rank 0 prints
        # overlap and ZeRO-1 do not go together: the run says it goes without overlap
        assert ("[parallel] overlap is off: not with zero = 1" in p.stderr) == (run == "n2zo"), p.stderr
    ref, ref_m = checkpoint(d, "n1"), metrics(d, "n1")
    assert min(ref_m["train/grad_norm"]) > 0.3, "clipping should be active"
    for run, (n, zero, overlap) in runs.items():
        ck, m = checkpoint(d, run), metrics(d, run)
        assert ck["@world_size"] == n and m["@ws"] == n
        assert sorted(k for k in ck if not k.startswith("@")) == sorted(k for k in ref if not k.startswith("@"))
        # equal to 1e-6 in general (sums in double); bitwise in practice, and here
        assert max_rel_diff(ck, ref) <= 1e-6, run
        assert max_rel_diff(ck, ref) == 0, f"{run}: not bitwise equal to one rank"
        # the logged losses too: each micro-batch's and each eval window's sum has its place, and
        # the places are added in order whatever rank filled them
        for k in ("train/loss", "eval/val/loss"):
            assert np.array_equal(m[k], ref_m[k]), f"{run}: {k} {m[k]} against {ref_m[k]}"
    out = rewarm("info", d / "n4z" / "checkpoints" / "step_00000006.h5").stdout
    assert "world_size 4" in out
    assert "world_size 2" in rewarm("info", d / "n2" / "metrics.h5").stdout


@pytest.mark.long_numbers
def test_one_run_whatever_zero_stage_recompute_mode_and_rank_count(d):
    # ZeRO 0, 1, 2, 3 × recompute none, selective, full × 1, 2, 4 ranks (every pair of the three
    # appears; 3 layers: two recomputed from shared buffers), 8 micro-batches per step over the
    # ranks, clipping active: the weights, moments and losses of one rank with zero 0 and nothing
    # recomputed, to the bit
    rewarm("train", config(d, "ref", layers=3))
    modes = ["none", "selective", "full"]
    for i, n in enumerate((1, 2, 4)):
        for zero in (0, 1, 2, 3):
            run = f"n{n}z{zero}"
            recompute = modes[(i + zero) % 3]
            args = ("train", config(d, run, layers=3, parallel={"zero": zero}, memory={"recompute": recompute}))
            p = rewarm(*args) if n == 1 else mpirun(n, *args)
            assert "train step 6/6" in p.stdout
            if n > 1:
                assert "overlap" not in p.stderr
                assert (f"(ZeRO-{zero})" in p.stderr) == (zero > 0), p.stderr
            ck = checkpoint(d, run)
            with h5py.File(d / run / "checkpoints" / "step_00000006.h5", "r") as f:
                stored = tomllib.loads(f.attrs["config"])
                assert stored["memory"]["recompute"] == recompute and stored["parallel"]["zero"] == zero
            assert max_rel_diff(ck, checkpoint(d, "ref")) == 0, f"{run} recompute={recompute}"
            for k in ("train/loss", "eval/val/loss"):  # the logged losses too
                assert np.array_equal(metrics(d, run)[k], metrics(d, "ref")[k]), f"{run}: {k}"


def test_one_micro_batch_per_step_on_one_rank_whatever_zero_stage(d):
    # global_batch = micro_batch on one rank: the micro-batch's gradient is the step's (no sum is
    # kept); ZeRO-3 steps from its gradient shard all the same (it once stepped from an unwritten one)
    data = {"micro_batch": 2, "global_batch": 2}
    rewarm("train", config(d, "ref", data=data))
    for zero in (1, 2, 3):
        rewarm("train", config(d, f"z{zero}", data=data, parallel={"zero": zero}))
        assert max_rel_diff(checkpoint(d, f"z{zero}"), checkpoint(d, "ref")) == 0, f"zero {zero}"
        np.testing.assert_array_equal(metrics(d, f"z{zero}")["train/grad_norm"], metrics(d, "ref")["train/grad_norm"])


@pytest.mark.long_numbers
def test_resume_across_zero_stages_recompute_modes_and_rank_counts(d):
    rewarm("train", config(d, "ref", layers=3, schedule={"total_steps": 7}))
    cfg = config(d, "run", layers=3, parallel={"zero": 2}, memory={"recompute": "full"}, schedule={"total_steps": 7})
    mpirun(4, "train", cfg, "--stop-at", 2)
    p = mpirun(2, "train", cfg, "--stop-at", 3, "--set", "parallel.zero=1", "--set", "memory.recompute=selective")
    assert "resuming from" in p.stderr
    mpirun(4, "train", cfg, "--stop-at", 4, "--set", "parallel.zero=3")  # each rank reads its parameter slice
    rewarm("train", cfg, "--stop-at", 5, "--set", "parallel.zero=3", "--set", "memory.recompute=none")
    p = mpirun(2, "train", cfg, "--stop-at", 6, "--set", "parallel.zero=2")
    rewarm("train", cfg, "--set", "parallel.zero=0", "--set", "memory.recompute=none")
    assert max_rel_diff(checkpoint(d, "run", 7), checkpoint(d, "ref", 7)) == 0


def test_zero_and_recompute_keys_are_checked(d):
    for key, value, message in [("parallel.zero", "4", "parallel.zero = 4 must be 0, 1, 2 or 3"),
                                ("memory.recompute", '"some"', 'memory.recompute = "some" is not one of none, selective, full')]:
        p = rewarm("train", config(d, "bad"), "--set", f"{key}={value}", check=False)
        assert p.returncode != 0 and message in p.stderr, p.stderr
        assert not (d / "bad").exists()
    p = rewarm("train", config(d, "bad", parallel={"zero": 2, "reduce": "fp32"}), check=False)
    assert p.returncode != 0 and 'parallel.reduce = "fp32" is for zero = 0 or 1' in p.stderr


@pytest.mark.long_numbers
def test_fp32_reduce_repeats_on_the_same_ranks_and_agrees_across_rank_counts(d):
    # reduce = "fp32": float sums over the ranks. The same ranks: the same run, to the bit; other
    # rank counts (other roundings of the partial sums): losses within 1e-6. One rank: unchanged.
    rewarm("train", config(d, "exact"))
    p = rewarm("train", config(d, "n1", parallel={"reduce": "fp32"}))
    assert max_rel_diff(checkpoint(d, "n1"), checkpoint(d, "exact")) == 0
    runs = {"n2": (2, 0, False), "n2again": (2, 0, False), "n4": (4, 0, False), "n2z": (2, 1, False),
            "n4o": (4, 0, True)}
    for run, (n, zero, overlap) in runs.items():
        mpirun(n, "train", config(d, run, parallel={"reduce": "fp32", "zero": zero, "overlap": overlap}))
    ref, ref_m = checkpoint(d, "exact"), metrics(d, "exact")
    assert max_rel_diff(checkpoint(d, "n2again"), checkpoint(d, "n2")) == 0
    # ZeRO-1 reduce-scatters what the others all-reduce: on two ranks one float addition either way
    assert max_rel_diff(checkpoint(d, "n2z"), checkpoint(d, "n2")) == 0
    for run in runs:
        # losses and gradient norms within 1e-6 (measured: 2e-9 and 5e-8); the weights move as any
        # other summation order moves them (measured ≤ 4e-6 after 6 steps), except the keys' bias,
        # which has no true gradient and drifts most (1e-4; docs/numerics.md, "Comparing runs")
        ck, m = checkpoint(d, run), metrics(d, run)
        for k in ("train/loss", "train/grad_norm", "eval/val/loss"):
            np.testing.assert_allclose(m[k], ref_m[k], rtol=1e-6, err_msg=f"{run} {k}")
        no_bias = {k: v for k, v in ck.items() if not k.endswith("query_key_value.bias")}
        assert 0 < max_rel_diff(no_bias, ref) <= 2e-5, run
    with h5py.File(d / "n2" / "checkpoints" / "step_00000006.h5", "r") as f:
        assert tomllib.loads(f.attrs["config"])["parallel"]["reduce"] == "fp32"  # the resolved config says so
    p = rewarm("train", config(d, "bad", parallel={"reduce": "fp16"}), check=False)
    assert p.returncode != 0 and 'parallel.reduce = "fp16" is not one of exact, fp32' in p.stderr


def test_resume_on_another_rank_count(d):
    rewarm("train", config(d, "ref"))
    cfg = config(d, "run", parallel={"zero": 1})
    p = mpirun(4, "train", cfg, "--stop-at", 2)
    assert "stopped after step 2" in p.stdout
    assert checkpoint(d, "run", 2)["@world_size"] == 4
    p = mpirun(2, "train", cfg, "--stop-at", 4, "--set", "parallel.zero=0")  # another rank count and zero
    assert "resuming from" in p.stderr
    rewarm("train", cfg)  # and one rank to the end
    assert max_rel_diff(checkpoint(d, "run"), checkpoint(d, "ref")) == 0
    assert np.array_equal(metrics(d, "run")["train/loss"], metrics(d, "ref")["train/loss"])


def test_eval_command_splits_windows_over_ranks(d):
    rewarm("train", config(d, "a"))
    ck = d / "a" / "checkpoints" / "step_00000006.h5"
    one = rewarm("eval", d / "a.toml", "--checkpoint", ck).stdout.split()
    for n in (2, 3):
        many = mpirun(n, "eval", d / "a.toml", "--checkpoint", ck).stdout.split()
        assert many[0] == "val" and len(many) == len(one)  # printed once
        assert many == one  # the same loss to the last printed digit: the windows' sums added in order
    # batches of 4: the 7 windows are 2 batches, so 2 of 4 ranks have none, and under ZeRO-3 (every
    # forward pass a collective) they repeat another's batch, counting none of it
    big = ("--set", "data.micro_batch=4", "--set", "data.global_batch=16")
    one = rewarm("eval", d / "a.toml", "--checkpoint", ck, *big).stdout.split()
    assert mpirun(4, "eval", d / "a.toml", "--checkpoint", ck, *big, "--set", "parallel.zero=3").stdout.split() == one


def one_error_line(p):
    lines = [l for l in p.stderr.splitlines() if l.startswith("rewarm: error")]
    assert p.returncode != 0 and len(lines) == 1, p.stderr
    return lines[0]


def test_batch_rule_names_the_numbers(d):
    p = mpirun(2, "train", config(d, "a", data={"micro_batch": 3, "global_batch": 9}), check=False)
    assert "data.global_batch = 9 is not a multiple of data.micro_batch × ranks = 3 × 2 = 6" in one_error_line(p)


def test_bad_shard_or_config_on_one_rank_ends_every_rank(d):
    cfg = config(d, "a")
    t0 = time.time()
    p = mpirun(1, "train", cfg, mpmd=["train", cfg, "--set", f"data.eval.0.path={d}/missing.h5"], check=False, timeout=60)
    line = one_error_line(p)
    assert "rank 1: " in line and "missing.h5: cannot open" in line
    p = mpirun(1, "train", cfg, mpmd=["train", cfg, "--set", "optimizer.lrr=1"], check=False, timeout=60)
    assert "rank 1: " in one_error_line(p) and "unknown key optimizer.lrr" in p.stderr
    assert time.time() - t0 < 30
    assert not (d / "a" / "metrics.h5").exists()


def test_nan_stops_every_rank_and_keeps_the_checkpoint(d):
    cfg = config(d, "a", optimizer={"lr": 1e38}, train={"checkpoint_interval": 1})
    p = mpirun(2, "train", cfg, check=False, timeout=60)
    line = one_error_line(p)  # every rank agrees: rank 0 says it once, naming no rank
    assert "became NaN at step 2" in line and "rank 0:" not in line and "rank 1:" not in line
    assert os.listdir(d / "a" / "checkpoints") == ["step_00000001.h5"]


def test_a_killed_rank_ends_the_job(d):
    cfg = config(d, "a", schedule={"total_steps": 100000}, train={"log_interval": 1, "eval_interval": 0})
    proc = subprocess.Popen(["mpirun", "-n", "2", "--oversubscribe", REWARM, "train", cfg], env=MPI_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):  # until both ranks train
            if (d / "a" / "metrics.h5").exists():
                break
            time.sleep(0.1)
        found = subprocess.run(["pgrep", "-f", f"{REWARM} train {cfg}"], capture_output=True, text=True).stdout.split()
        ranks = [pid for pid in found if int(pid) != proc.pid]  # not mpirun itself
        assert len(ranks) == 2, found
        os.kill(int(ranks[-1]), signal.SIGKILL)
        proc.wait(timeout=30)  # mpirun notices and ends the other rank
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0


def test_a_failed_checkpoint_write_stops_every_rank(d):
    cfg = config(d, "a", train={"checkpoint_interval": 2})
    os.makedirs(d / "a" / "checkpoints" / "step_00000004.h5.tmp")  # rank 0 cannot write step 4
    p = mpirun(2, "train", cfg, check=False, timeout=60)
    line = one_error_line(p)
    assert "step_00000004.h5" in line and "rank 1" not in line
    assert sorted(f for f in os.listdir(d / "a" / "checkpoints") if f.endswith(".h5")) == ["step_00000002.h5"]


def test_a_kill_during_a_parallel_checkpoint_write_leaves_the_previous_one_the_newest(d):
    """Both ranks write their slices of every checkpoint into its .tmp; a kill -9 of the job while
    they do leaves the .tmp unrenamed: the previous checkpoint stays the newest, whole, and resumes."""
    cfg = config(d, "a", model={"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8},
                 parallel={"zero": 1}, schedule={"total_steps": 100000},
                 train={"eval_interval": 0, "checkpoint_interval": 1, "keep_checkpoints": 1000})
    proc = subprocess.Popen(["mpirun", "-n", "2", "--oversubscribe", REWARM, "train", cfg], env=MPI_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = d / "a" / "checkpoints"
    caught = None
    try:
        for _ in range(6000):  # until a write is under way after at least one complete checkpoint
            names = os.listdir(ck) if ck.exists() else []
            tmp = [n for n in names if n.endswith(".h5.tmp")]
            if tmp and any(n.endswith(".h5") for n in names):
                subprocess.run(["pkill", "-9", "-f", f"{REWARM} train {cfg}"])
                caught = tmp[0]
                break
            time.sleep(0.005)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert caught, "no checkpoint write was seen under way"
    left = sorted(os.listdir(ck), key=lambda n: (len(n), n))
    assert caught in left  # the write was cut short, and never renamed
    good = [n for n in left if n.endswith(".h5")]
    assert int(good[-1][5:13]) == int(caught[5:13]) - 1
    assert "every chunk's checksum" in rewarm("info", ck / good[-1], "--verify").stdout
    for _ in range(100):  # the killed ranks are gone (rank 0 held the run_dir lock)
        if subprocess.run(["pgrep", "-f", f"{REWARM} train {cfg}"], capture_output=True).returncode:
            break
        time.sleep(0.1)
    stop = int(good[-1][5:13]) + 1
    out = rewarm("train", cfg, "--stop-at", stop).stderr  # on one rank: it reads what two wrote
    assert f"resuming from {ck / good[-1]}" in out
    assert f"step_{stop:08d}.h5" in os.listdir(ck)
