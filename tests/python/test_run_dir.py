"""A run directory is one run's: the run_dir lock, metrics that stay readable through a kill -9,
write failures (a full disk, a failure injected at each stage of a write) that end the run with
one line, and checksums that catch a damaged checkpoint, shard or metrics file."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from helpers import REWARM, rewarm, tiny_config, write_config, write_shard

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from postprocess.runs import read_metrics  # noqa: E402  (the study report's reader)

FAULTS = os.environ.get("REWARM_IO_FAULTS", "")


@pytest.fixture
def d(tmp_path):
    rng = np.random.default_rng(0)
    write_shard(tmp_path / "train.h5", rng.integers(0, 13, 4000), 13)
    write_shard(tmp_path / "val.h5", rng.integers(0, 13, 400), 13)
    return tmp_path


def config(d, run="run", steps=40, **train):
    train = {"log_interval": 1, "eval_interval": 10, "checkpoint_interval": 10, **train}
    cfg = tiny_config(d / run, d / "train.h5", [{"name": "val", "path": str(d / "val.h5")}],
                      schedule={"kind": "constant", "warmup_steps": 0, "total_steps": steps}, train=train)
    return write_config(d / f"{run}.toml", cfg)


def start(cfg, *args, env=None):
    """rewarm train in the background; its stderr goes to CFG.stderr (a pipe nobody reads would block it)."""
    err = open(f"{cfg}.stderr", "w")
    return subprocess.Popen([REWARM, "train", str(cfg), *map(str, args)], stdout=subprocess.DEVNULL, stderr=err,
                            text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1", **(env or {})})


def wait_for(predicate, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def live_steps(path):
    """The train steps a SWMR reader sees (the file may be open in a run, or left by a killed one)."""
    with h5py.File(path, "r", swmr=True) as f:
        return f["train/step"][:]


def one_line(p, errors_only=False):
    """The one line a failure prints (errors_only: the one error line among notes and mpirun's words)."""
    lines = [l for l in p.stderr.splitlines() if l.strip() and (not errors_only or l.startswith("rewarm: error"))]
    assert len(lines) == 1, p.stderr
    return lines[0]


# ---- the lock ---------------------------------------------------------------------------------

def test_a_second_run_in_a_busy_run_dir_fails_at_once_naming_the_holder(d):
    cfg = config(d, steps=100000)
    first = start(cfg, env={"SLURM_JOB_ID": "4242"})
    try:
        wait_for(lambda: os.path.exists(d / "run" / "metrics.h5"))
        t0 = time.time()
        p = rewarm("train", cfg, check=False)
        assert time.time() - t0 < 5 and p.returncode == 1
        line = one_line(p)
        assert f"in use by another rewarm train (pid {first.pid} on host {socket.gethostname()}, SLURM job 4242, since " \
               in line, line
        assert "heartbeat" in line and "two runs in one run_dir destroy each other's files" in line
        # what needs no lock works beside the run
        assert rewarm("info", d / "run" / "metrics.h5").returncode == 0
        wait_for(lambda: checkpoints(d))
        shutil.copy(d / "run" / "checkpoints" / checkpoints(d)[-1], d / "ck.h5")  # before keep_checkpoints prunes it
        assert "val" in rewarm("eval", cfg, "--checkpoint", d / "ck.h5").stdout
        first.send_signal(signal.SIGTERM)  # a job near its time limit: checkpoint, exit 75, lock released
        assert first.wait(timeout=60) == 75
    finally:
        first.kill()
    assert not os.path.exists(d / "run" / "rewarm.lock")
    p = rewarm("train", cfg, "--stop-at", first_free_step(d) + 1)  # the same run goes on
    assert "taking over" not in p.stderr


def checkpoints(d, run="run"):
    folder = d / run / "checkpoints"
    return sorted(f for f in os.listdir(folder) if f.endswith(".h5")) if folder.exists() else []


def first_free_step(d):
    return int(checkpoints(d)[-1][5:13])


def test_a_killed_holders_lock_is_taken_over_and_the_run_resumes(d):
    cfg = config(d, steps=100000)
    first = start(cfg)
    try:
        wait_for(lambda: len(checkpoints(d)) >= 2)
    finally:
        first.kill()
        first.wait()
    assert os.path.exists(d / "run" / "rewarm.lock")  # kill -9 leaves it
    p = rewarm("train", cfg, "--stop-at", first_free_step(d) + 2)
    assert f"rewarm: taking over {d}/run/rewarm.lock from pid {first.pid} on host" in p.stderr
    assert "that process has exited" in p.stderr
    steps = live_steps(d / "run" / "metrics.h5")
    assert list(steps) == list(range(1, len(steps) + 1))  # no step twice, none missing


def lock_from(d, host, age, pid=1, run="run"):
    os.makedirs(d / run, exist_ok=True)
    path = d / run / "rewarm.lock"
    path.write_text(json.dumps({"host": host, "pid": pid, "pid_start": "1", "boot_id": "b", "slurm_job": "9_3",
                                "since": "2026-12-01 10:00:00 UTC", "token": "t"}))
    os.utime(path, (time.time() - age, time.time() - age))


def test_another_hosts_lock_is_stale_only_after_its_timeout(d):
    cfg = config(d, steps=2)
    lock_from(d, "node-17", age=100)
    line = one_line(rewarm("train", cfg, check=False))  # ages in whole seconds: 100, or a little more on a slow machine
    assert re.search(r"pid 1 on host node-17, SLURM job 9_3, since 2026-12-01 10:00:00 UTC, heartbeat 10\d s ago", line)
    assert "after 300 s without heartbeat" in line
    p = rewarm("train", cfg, check=False, env={"REWARM_LOCK_STALE_SECONDS": "60"})
    assert p.returncode == 0, p.stderr
    assert re.search(r"its heartbeat is 10\d s old \(stale after 60 s\)", p.stderr), p.stderr
    bad = rewarm("train", cfg, check=False, env={"REWARM_LOCK_STALE_SECONDS": "soon"})
    assert "REWARM_LOCK_STALE_SECONDS=soon: must be a positive number of seconds" in one_line(bad)


def test_sweep_run_honours_the_lock(d):
    base = config(d, steps=2)
    (d / "study.toml").write_text(f'base = "{base}"\nrun_root = "{d}/sweep"\n'
                                  '[runs.only]\nset = ["schedule.total_steps=2"]\n')
    lock_from(d, socket.gethostname(), age=0, pid=os.getpid(), run="sweep/only")  # this live process holds it
    with open(f"/proc/{os.getpid()}/stat") as f:  # with its start time, as rewarm writes it
        start_ticks = f.read().rsplit(")", 1)[1].split()[19]
    lock_path = d / "sweep" / "only" / "rewarm.lock"
    lock = json.loads(lock_path.read_text())
    lock.update(pid_start=start_ticks, boot_id=open("/proc/sys/kernel/random/boot_id").read().strip())
    lock_path.write_text(json.dumps(lock))
    p = rewarm("sweep", d / "study.toml", "--run", "only", check=False)
    assert p.returncode == 1 and f"in use by another rewarm train (pid {os.getpid()}" in one_line(p, errors_only=True)
    lock_path.unlink()
    rewarm("sweep", d / "study.toml", "--run", "only")


def test_a_run_whose_lock_is_taken_stops(d):
    cfg = config(d, steps=100000)
    first = start(cfg, env={"REWARM_LOCK_STALE_SECONDS": "2"})  # heartbeat every 0.2 s
    try:
        wait_for(lambda: os.path.exists(d / "run" / "metrics.h5"))
        lock_from(d, "node-3", age=0)  # as if another host had judged it stale and taken it
        first.wait(timeout=30)
    finally:
        first.kill()
    assert first.returncode == 1
    assert "this run's lock was removed or taken over by another process" in open(f"{cfg}.stderr").read()


# ---- metrics ----------------------------------------------------------------------------------

def test_metrics_are_readable_while_written_and_after_kill_9_at_any_moment(d):
    cfg = config(d, steps=100000, checkpoint_interval=25)
    rng = np.random.default_rng(1)
    seen_running = 0
    for attempt in range(6):
        p = start(cfg)
        try:
            wait_for(lambda: os.path.exists(d / "run" / "metrics.h5"))
            end = time.time() + rng.uniform(0.3, 1.5)
            while time.time() < end:  # a reader beside the writer
                steps = live_steps(d / "run" / "metrics.h5")
                seen_running = max(seen_running, len(steps))
        finally:
            p.kill()
            p.wait()
        for reader in (live_steps, lambda path: read_metrics(path)[0]["step"].to_numpy()):
            steps = reader(d / "run" / "metrics.h5")
            assert len(steps) > 0 and list(steps) == list(range(1, len(steps) + 1)), (attempt, steps)
        train, evals, _, _ = read_metrics(d / "run" / "metrics.h5")
        assert len(set(len(train[c]) for c in train)) == 1 and np.isfinite(train["loss"]).all()
        assert "train:" in rewarm("info", d / "run" / "metrics.h5").stdout
    assert seen_running > 0
    # a resumed run keeps the steps up to its checkpoint and redoes the rest, none twice
    last = first_free_step(d)
    rewarm("train", cfg, "--stop-at", last + 3)
    with h5py.File(d / "run" / "metrics.h5", "r") as f:  # closed cleanly: a plain reader opens it
        steps = f["train/step"][:]
        assert list(steps) == list(range(1, last + 4))
        assert all(len(f["train"][k]) == len(steps) for k in f["train"])


# ---- write failures ---------------------------------------------------------------------------

def check_failure(d, p, reason, file, last_good, mpi=False, aborted=False):
    assert p.returncode == 1, (p.returncode, p.stderr)  # no crash (139), no abort (134)
    line = one_line(p, errors_only=mpi)
    assert reason in line and file in line, line
    assert (f"the last good checkpoint is step {last_good}" if last_good else "no checkpoint of this run") in line, line
    if last_good:
        ck = d / "run" / "checkpoints" / f"step_{last_good:08d}.h5"
        assert "every chunk's checksum" in rewarm("info", ck, "--verify").stdout
    assert not [f for f in os.listdir(d / "run" / "checkpoints") if f.endswith(".tmp")]
    # closed on the way out (any reader opens it), unless its own last write failed: then SWMR readers do
    # (after an MPI_Abort the metrics were not closed either: SWMR readers open them as of their last flush)
    with h5py.File(d / "run" / "metrics.h5", "r", swmr=file == "metrics.h5" or aborted) as f:
        assert len(f["train/step"]) > 0
    return line


STAGES = [  # (file, call, calls of that kind that succeed first, errno, its text)
    ("step_00000020.h5.tmp", "open", 0, 28, "No space left on device"),        # create the file
    ("step_00000020.h5.tmp", "write", 3, 122, "Disk quota exceeded"),          # a tensor's data
    ("step_00000020.h5.tmp", "write", 60, 28, "No space left on device"),      # the metadata, at flush
    ("step_00000020.h5.tmp", "fsync", 0, 5, "Input/output error"),             # sync before the rename
    ("step_00000020.h5.tmp", "close", 0, 5, "Input/output error"),             # NFS reports at close
    ("step_00000020.h5", "rename", 0, 5, "Input/output error"),                # into place
    ("metrics.h5", "write", 290, 28, "No space left on device"),               # a log line, near step 15
]


@pytest.mark.skipif(not os.path.exists(FAULTS), reason="needs the io_faults library (REWARM_IO_FAULTS)")
@pytest.mark.parametrize("file,call,after,err,text", STAGES, ids=[f"{s[1]}-{s[0]}-{s[2]}" for s in STAGES])
def test_a_write_failure_at_any_stage_ends_the_run_with_one_line(d, file, call, after, err, text):
    cfg = config(d, steps=40)
    env = {"LD_PRELOAD": FAULTS, "REWARM_FAULT_PATH": file, "REWARM_FAULT_CALL": call,
           "REWARM_FAULT_AFTER": str(after), "REWARM_FAULT_ERRNO": str(err)}
    p = rewarm("train", cfg, check=False, env=env)
    check_failure(d, p, text, file, 10)  # the metrics' 290th write comes after the step-10 checkpoint
    if file != "metrics.h5":
        assert sorted(f for f in os.listdir(d / "run" / "checkpoints")) == ["step_00000010.h5"]
    # the next start resumes from the last good checkpoint
    rewarm("train", cfg, "--stop-at", 12)


@pytest.mark.skipif(not os.path.exists(FAULTS), reason="needs the io_faults library (REWARM_IO_FAULTS)")
def test_a_failed_write_on_one_rank_of_a_parallel_checkpoint_ends_the_job_with_one_line(d):
    """Every rank writes its slice (parallel HDF5). A write that fails on rank 0 alone, inside a
    collective call, leaves rank 1 waiting in that call (HDF5 1.10's errors are not collective):
    rank 0 waits REWARM_COLLECTIVE_WAIT_SECONDS for it, says its one line and ends the job."""
    if shutil.which("mpirun") is None:
        pytest.skip("needs OpenMPI's mpirun")
    cfg = config(d, steps=40)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1",
               REWARM_FAULT_PATH="step_00000020.h5.tmp", REWARM_FAULT_CALL="write", REWARM_FAULT_AFTER="3",
               REWARM_COLLECTIVE_WAIT_SECONDS="3")
    cmd = ["mpirun", "-n", "2", "--oversubscribe", "-x", f"LD_PRELOAD={FAULTS}", "-x", "REWARM_FAULT_PATH", "-x",
           "REWARM_FAULT_CALL", "-x", "REWARM_FAULT_AFTER", "-x", "REWARM_COLLECTIVE_WAIT_SECONDS", REWARM, "train",
           str(cfg)]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    line = check_failure(d, p, "No space left on device", "step_00000020.h5.tmp", 10, mpi=True, aborted=True)
    assert "rank 0: " in line and "did not return from the collective write in 3 s: ending the job" in line
    assert time.time() - t0 < 60
    assert sorted(os.listdir(d / "run" / "checkpoints")) == ["step_00000010.h5"]
    for _ in range(100):  # mpirun may return before the ranks it kills are gone (rank 0 holds the lock)
        if subprocess.run(["pgrep", "-f", f"{REWARM} train {cfg}"], capture_output=True).returncode:
            break
        time.sleep(0.1)
    # the next start, on any rank count, resumes from the last good checkpoint
    rewarm("train", cfg, "--stop-at", 12)


@pytest.mark.may_skip  # where mounting is refused (no root, a container without CAP_SYS_ADMIN), it says so
def test_a_full_disk_ends_the_run_with_one_line_and_keeps_what_was_written(d):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = d / "small"
    mnt.mkdir()
    # room for the metrics (~80 kB) and two checkpoints of this model (~260 kB each), not for a third
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs was refused here (a container without CAP_SYS_ADMIN?)")
    try:
        cfg = tiny_config(mnt / "run", d / "train.h5", [{"name": "val", "path": str(d / "val.h5")}],
                          model={"hidden_size": 32, "intermediate_size": 64},
                          schedule={"kind": "constant", "warmup_steps": 0, "total_steps": 400},
                          train={"log_interval": 1, "eval_interval": 10, "checkpoint_interval": 10,
                                 "keep_checkpoints": 100})
        p = rewarm("train", write_config(d / "full.toml", cfg), check=False)
        assert p.returncode == 1, (p.returncode, p.stderr)
        line = one_line(p)
        assert "No space left on device" in line and "the last good checkpoint is step " in line, line
        good = sorted(f for f in os.listdir(mnt / "run" / "checkpoints") if f.endswith(".h5"))
        assert good and not [f for f in os.listdir(mnt / "run" / "checkpoints") if f.endswith(".tmp")]
        assert f"step {int(good[-1][5:13])} (" in line
        assert "every chunk's checksum" in rewarm("info", mnt / "run" / "checkpoints" / good[-1], "--verify").stdout
        with h5py.File(mnt / "run" / "metrics.h5", "r") as f:
            assert len(f["train/step"]) >= int(good[-1][5:13])
    finally:
        subprocess.run(["umount", str(mnt)])


# ---- checksums --------------------------------------------------------------------------------

def flip(path, dataset, byte=5):
    """Flips one bit inside a dataset's first chunk (or its contiguous data)."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        at = ds.id.get_chunk_info(0).byte_offset if ds.chunks else ds.id.get_offset()
    with open(path, "r+b") as f:
        f.seek(at + byte)
        b = f.read(1)
        f.seek(at + byte)
        f.write(bytes([b[0] ^ 0x08]))


DAMAGE = ["model/embed_out.weight", "model/gpt_neox.layers.1.mlp.dense_h_to_4h.bias",
          "optimizer/exp_avg/gpt_neox.embed_in.weight", "optimizer/exp_avg_sq/gpt_neox.layers.0.attention.dense.weight"]


@pytest.mark.parametrize("dataset", DAMAGE)
def test_a_flipped_bit_in_a_checkpoint_is_found_on_every_read(d, dataset):
    cfg = config(d, steps=10)
    rewarm("train", cfg)
    ck = d / "run" / "checkpoints" / "step_00000010.h5"
    assert "every chunk's checksum and the metadata's matched" in rewarm("info", ck, "--verify").stdout
    flip(ck, dataset)
    expect = f"step_00000010.h5: cannot read dataset '/{dataset}': checksum mismatch: the data is damaged"
    assert expect in one_line(rewarm("info", ck, "--verify", check=False))
    assert expect in one_line(rewarm("train", cfg, check=False))  # the same run again: a resume reads it
    fresh = {"run_dir": f'"{d}/fresh"', "init.from": f'"{ck}"', "init.load": '"full"'}
    sets = [a for k, v in fresh.items() for a in ("--set", f"{k}={v}")]
    assert expect in one_line(rewarm("train", cfg, *sets, check=False))  # init.from
    if dataset.startswith("model/"):  # what reads only the weights
        assert expect in one_line(rewarm("eval", cfg, "--checkpoint", ck, check=False))
        assert expect in one_line(rewarm("convert", "to-hf", ck, "--out", d / "hf", check=False))


def test_damaged_metadata_and_damaged_state_are_found_too(d):
    cfg = config(d, steps=10)
    rewarm("train", cfg)
    ck = d / "run" / "checkpoints" / "step_00000010.h5"
    state = d / "state.h5"
    shutil.copy(ck, state)
    flip(state, "state/set_samples", byte=2)
    assert "cannot read dataset '/state/set_samples': checksum mismatch" in one_line(rewarm("info", state, check=False))
    with h5py.File(ck, "r") as f:  # an object header: metadata, checksummed by HDF5 itself
        header = h5py.h5o.get_info(f["model/embed_out.weight"].id).addr
    with open(ck, "r+b") as f:
        f.seek(header + 12)
        b = f.read(1)
        f.seek(header + 12)
        f.write(bytes([b[0] ^ 0x01]))
    line = one_line(rewarm("train", cfg, check=False))
    assert "step_00000010.h5" in line and "checksum mismatch" in line, line


def test_shards_and_metrics_are_verified_and_old_files_say_what_was_not(d):
    rewarm("synth", "--out", d / "synth.h5", "--vocab", 8, "--tokens", 5000)
    assert "every chunk's checksum and the metadata's matched" in rewarm("info", d / "synth.h5", "--verify").stdout
    flip(d / "synth.h5", "tokens")
    assert "synth.h5: cannot read dataset '/tokens': checksum mismatch" in \
        one_line(rewarm("info", d / "synth.h5", "--verify", check=False))
    out = rewarm("info", d / "train.h5", "--verify").stdout  # written by h5py without checksums
    assert "1 of them (/tokens) carry no checksums" in out and "not verified" in out
    cfg = config(d, steps=3)
    rewarm("train", cfg)
    out = rewarm("info", d / "run" / "metrics.h5", "--verify").stdout
    assert "(the metadata's checksums matched)" in out and "metrics series are appended in place" in out


def test_a_checkpoint_without_checksums_loads_with_a_note(d):
    cfg = config(d, steps=4)
    rewarm("train", cfg)
    ck = d / "run" / "checkpoints" / "step_00000004.h5"
    old = d / "old.h5"
    with h5py.File(ck, "r") as src, h5py.File(old, "w") as dst:  # as rewarm wrote them before: contiguous
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        def copy(name, obj):  # returns None: a value would end the visit
            if isinstance(obj, h5py.Dataset):
                dst.create_dataset(name, data=obj[()])
        src.visititems(copy)
    p = rewarm("train", cfg, "--set", f'init.from="{old}"', "--set", f'run_dir="{d}/from_old"')
    assert f"rewarm: note: {old} has no checksums (written before rewarm stored them): loaded unverified" in p.stderr
    assert "carry no checksums" in rewarm("info", old, "--verify").stdout


def test_a_truncated_checkpoint_says_what_it_is(d):
    cfg = config(d, steps=10)
    rewarm("train", cfg)
    ck = d / "run" / "checkpoints" / "step_00000010.h5"
    size = os.path.getsize(ck)
    os.truncate(ck, size // 3)
    line = one_line(rewarm("train", cfg, check=False))
    assert f"step_00000010.h5: cannot open HDF5 file ({size // 3} bytes, HDF5 signature at byte 0): truncated: " \
           f"{size // 3} bytes of the {size} its HDF5 superblock records; expected a rewarm checkpoint" in line, line


# ---- the other writers: shards, conversions ---------------------------------------------------

def writer_fails(out, command, after, expect):
    """command (a list of rewarm arguments writing `out`) under a write failure after `after` writes."""
    env = {"LD_PRELOAD": FAULTS, "REWARM_FAULT_PATH": f"{out.name}.tmp", "REWARM_FAULT_CALL": "write",
           "REWARM_FAULT_AFTER": str(after)}
    p = rewarm(*command, check=False, env=env)
    assert p.returncode == 1 and "No space left on device" in one_line(p) and expect in one_line(p), p.stderr
    assert not out.exists() and not os.path.exists(f"{out}.tmp")  # nothing half-written put in place


@pytest.mark.skipif(not os.path.exists(FAULTS), reason="needs the io_faults library (REWARM_IO_FAULTS)")
@pytest.mark.parametrize("after", [2, 20, 52])  # a chunk, the middle, the metadata written at close
def test_a_shard_writer_that_cannot_write_leaves_nothing(d, after):
    out = d / "s.h5"
    writer_fails(out, ["synth", "--out", out, "--vocab", 8, "--tokens", 3000000], after, "s.h5.tmp: cannot ")
    from megatron_format import write_indexed
    write_indexed(d / "corpus", [[list(range(1, 40))] * 20] * 2000, np.uint16)
    out = d / "m.h5"
    writer_fails(out, ["convert", "megatron", d / "corpus", "--out", out, "--vocab-size", 50, "--quiet"], after // 10,
                 "m.h5.tmp")
