"""`rewarm sweep STUDY --status`: where every run of a study stands, read from its run dirs and
logs alone, at several moments: before anything ran, while runs run, after one failed, one was
stopped for requeue (SIGUSR1), one was killed, and once all are done."""
import json
import os
import signal
import subprocess
import time

import h5py
import numpy as np

from helpers import REWARM, rewarm, tiny_config, write_config, write_shard, write_task

STUDY = """
base = "{base}"
run_root = "{root}"
downstream = "val"
[runs.quick]
set = ["schedule.total_steps=4"]
[runs.bad]
set = ["data.train.0.path={d}/missing.h5"]
[runs.long]
set = ["schedule.total_steps=100000", "train.checkpoint_interval=20"]
[runs.killed]
set = ["schedule.total_steps=100000", "train.checkpoint_interval=20"]
[runs.child]
set = ["init.from=@quick", "schedule.total_steps=4"]
"""


def status(d):
    p = rewarm("sweep", d / "study.toml", "--status", "--json")
    return {r["name"]: r for r in json.loads(p.stdout)["runs"]}


def sweep_run(d, name, background=False):
    """A run as scripts/run_study.sh starts it: its output in RUN_ROOT/logs/NAME.log."""
    (d / "runs" / "logs").mkdir(parents=True, exist_ok=True)
    log = open(d / "runs" / "logs" / f"{name}.log", "w")
    cmd = [REWARM, "sweep", str(d / "study.toml"), "--run", name]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    if background:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode


def wait_for_checkpoint(d, run, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        folder = d / "runs" / run / "checkpoints"
        if folder.exists() and any(f.endswith(".h5") for f in os.listdir(folder)):
            return
        time.sleep(0.05)
    raise AssertionError(f"{run} wrote no checkpoint")


def test_status_at_several_moments(tmp_path):
    d = tmp_path
    rng = np.random.default_rng(0)
    write_shard(d / "train.h5", rng.integers(0, 13, 4000), 13)
    write_shard(d / "val.h5", rng.integers(0, 13, 400), 13)
    write_task(d / "mc.h5", [([1, 2, 3], [[4], [5]], [2, 2], 0), ([7, 8], [[9, 10], [2]], [4, 2], 1)])
    cfg = tiny_config(d / "unused", d / "train.h5", [{"name": "val", "path": str(d / "val.h5")}],
                      train={"eval_interval": 2, "log_interval": 1})
    cfg["data"]["tasks"] = [{"name": "mc", "path": str(d / "mc.h5")}]
    base = write_config(d / "base.toml", cfg)
    (d / "study.toml").write_text(STUDY.format(base=base, root=d / "runs", d=d))

    s = status(d)
    assert {r["state"] for r in s.values()} == {"not started"} and s["child"]["stage"] == 1
    table = rewarm("sweep", d / "study.toml", "--status").stdout
    assert "study study: 5 runs in " in table and "(5 not started)" in table

    assert sweep_run(d, "quick") == 0
    assert sweep_run(d, "bad") == 1
    long = sweep_run(d, "long", background=True)
    killed = sweep_run(d, "killed", background=True)
    try:
        wait_for_checkpoint(d, "long")
        wait_for_checkpoint(d, "killed")
        s = status(d)
        assert s["long"]["state"] == "running" and f"pid {long.pid} on host" in s["long"]["detail"]
        assert s["long"]["step"] > 0 and s["long"]["tokens_per_second"] > 0 and s["long"]["train_loss"] > 0
        killed.kill()  # kill -9: its lock stays, its holder is gone
        killed.wait()
        long.send_signal(signal.SIGUSR1)  # near the time limit: checkpoint, exit 75
        assert long.wait(timeout=60) == 75
    finally:
        long.kill()
        killed.kill()
    s = status(d)
    assert s["quick"]["state"] == "done" and s["quick"]["step"] == 4 and s["quick"]["checkpoint_step"] == 4
    assert set(s["quick"]["eval_loss"]) == {"val"} and s["quick"]["eval_loss"]["val"] > 0
    assert set(s["quick"]["task_acc"]) == {"mc"} and s["quick"]["task_acc"]["mc"] in (0.0, 0.5, 1.0)
    assert s["bad"]["state"] == "failed" and "missing.h5: cannot open" in s["bad"]["detail"]
    assert s["long"]["state"] == "stopped for requeue" and "signal: time limit near" in s["long"]["detail"]
    assert s["long"]["checkpoint_step"] == s["long"]["step"] > 0  # it logs the step it stopped at
    assert s["killed"]["state"] == "stopped" and "that process has exited" in s["killed"]["detail"]
    assert s["child"]["state"] == "not started"

    table = rewarm("sweep", d / "study.toml", "--status").stdout
    row = next(l for l in table.splitlines() if l.startswith("bad "))
    assert "failed" in row and "0/8" in row and "missing.h5: cannot open" in row
    header = table.splitlines()[1].split()
    assert header[:5] == ["run", "stage", "state", "step", "train"] and "val" in header and "tok/s" in header
    assert "mc acc" in table.splitlines()[1]

    assert sweep_run(d, "child") == 0
    assert status(d)["child"]["state"] == "done"
    p = rewarm("sweep", d / "study.toml", "--json", check=False)
    assert p.returncode == 1 and "--json: goes with --status" in p.stderr


def run_study(d, runs, seed, steps, eval_interval):
    """scripts/run_study.sh --jobs 2 on a study of `runs` (its [runs.*] tables) over the tests'
    tiny config and a random shard, in d; returns the CompletedProcess."""
    from helpers import ROOT

    rng = np.random.default_rng(seed)
    write_shard(d / "train.h5", rng.integers(0, 13, 4000), 13)
    write_shard(d / "val.h5", rng.integers(0, 13, 400), 13)
    base = write_config(d / "base.toml", tiny_config(d / "unused", d / "train.h5", [{"name": "val", "path": str(d / "val.h5")}],
                                                     schedule={"total_steps": steps}, train={"eval_interval": eval_interval}))
    (d / "study.toml").write_text(f'base = "{base}"\nrun_root = "{d}/runs"\nupstream = "val"\ndownstream = "val"\n' + runs)
    return subprocess.run([os.path.join(ROOT, "scripts", "run_study.sh"), d / "study.toml", "--jobs", "2"], cwd=ROOT,
                          capture_output=True, text=True, env=dict(os.environ, REWARM=REWARM))


def test_run_study_runs_stage_by_stage_and_reports(tmp_path):
    """scripts/run_study.sh: each run announced with its last eval losses, the dependent run after
    its parent, a failed run's dependents skipped, the report drawn; exit 1 when a run failed."""
    d = tmp_path
    p = run_study(d, '[runs.first]\n[runs.second]\nset = ["init.from=@first"]\n'
                     f'[runs.broken]\nset = ["data.train.0.path={d}/missing.h5"]\n'
                     '[runs.orphan]\nset = ["init.from=@broken"]\n', seed=0, steps=4, eval_interval=2)
    assert p.returncode == 1, p.stdout + p.stderr
    out = p.stdout
    assert "study " in out and "4 runs in" in out and "2 at a time" in out
    import re
    assert re.search(r"done   first  val [0-9.]+", out) and re.search(r"done   second  val [0-9.]+", out), out
    assert "FAILED broken" in out and "skip   orphan (a run it starts from failed)" in out
    assert out.index("done   first") < out.index("start  second")
    assert (d / "runs" / "report" / "summary.csv").exists()
    s = status(d)
    assert s["second"]["state"] == "done" and s["broken"]["state"] == "failed" and s["orphan"]["state"] == "not started"


def test_run_study_gives_the_run_others_wait_for_the_spare_cores(tmp_path):
    """scripts/run_study.sh: a run no other run starts from waits for the last stage, so the run
    the others start from is alone in its stage and runs on both job slots as MPI ranks; it is
    the same run as on one rank (its train losses bit for bit, as `sweep --run-root` elsewhere gives)."""
    d = tmp_path
    p = run_study(d, '[runs.pre]\n[runs.leaf]\n[runs.child]\nset = ["init.from=@pre"]\n', seed=1, steps=6, eval_interval=3)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert "start  pre on 2 ranks" in out and "start  leaf on" not in out and "start  child on" not in out
    assert out.index("done   pre") < out.index("start  leaf") and out.index("start  child") < out.index("start  leaf")
    assert "world_size 2" in rewarm("info", d / "runs" / "pre" / "checkpoints" / "step_00000006.h5").stdout
    rewarm("sweep", d / "study.toml", "--run-root", d / "one", "--run", "pre")
    with h5py.File(d / "runs" / "pre" / "metrics.h5", "r") as a, h5py.File(d / "one" / "pre" / "metrics.h5", "r") as b:
        assert np.array_equal(a["train/loss"][:], b["train/loss"][:]) and len(a["train/loss"]) == 6
        assert np.array_equal(a["eval/val/loss"][:], b["eval/val/loss"][:])
