"""jobscripts/slurm_train.sbatch on a real (one-node, local) SLURM: a job stopped with
--stop-at and resubmitted resumes from its checkpoint and ends where an unbroken run ends."""
import json
import os
import subprocess
import time

import h5py
import numpy as np
import pytest

from helpers import REWARM, ROOT, rewarm, tiny_config, write_config, write_shard

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starting munge and SLURM needs root")
JOB_ENV = dict(os.environ, REWARM=REWARM)  # the job scripts run $REWARM (sbatch passes the environment on)


@pytest.fixture
def slurm():
    """The local one-node SLURM, started if it is not running."""
    subprocess.run([os.path.join(ROOT, "scripts", "slurm_local.sh")], check=True)


def job_state(jid):
    info = subprocess.run(["scontrol", "show", "job", jid], capture_output=True, text=True).stdout
    return info.split("JobState=")[1].split()[0] if "JobState=" in info else "GONE"


def submit(*args, out):
    """sbatch from the repository root (the job script runs $REWARM); waits for the end."""
    jid = subprocess.run(["sbatch", "--parsable", "--cpus-per-task=1", f"--output={out}",
                          "jobscripts/slurm_train.sbatch", *map(str, args)],
                         cwd=ROOT, capture_output=True, text=True, check=True, env=JOB_ENV).stdout.strip().split(";")[0]
    for _ in range(300):
        state = job_state(jid)
        if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            return state, open(out).read()
        time.sleep(0.5)
    raise AssertionError(f"SLURM job {jid} did not finish in 150 s")


def test_job_stops_and_resumes(tmp_path, slurm):
    rng = np.random.default_rng(0)
    write_shard(tmp_path / "train.h5", rng.integers(0, 13, 4000), 13)
    for name in ("slurm", "direct"):
        write_config(tmp_path / f"{name}.toml", tiny_config(tmp_path / name, tmp_path / "train.h5", layers=1,
                                                            schedule={"total_steps": 6}, train={"checkpoint_interval": 0}))

    state, log = submit(tmp_path / "slurm.toml", "--stop-at", 3, out=tmp_path / "job1.out")
    assert state == "COMPLETED", log
    assert "train step 3/6 (50%)" in log and "train step 4/6" not in log and "stopped after step 3" in log
    state, log = submit(tmp_path / "slurm.toml", out=tmp_path / "job2.out")
    assert state == "COMPLETED", log
    assert "train step 3/6" not in log and "train step 4/6" in log and "train step 6/6 (100%)" in log

    # the same run, never stopped, outside SLURM, on the job's one thread (sums over threads are ordered
    # by the thread count: docs/numerics.md)
    rewarm("train", tmp_path / "direct.toml", env={"OMP_NUM_THREADS": "1"})
    with h5py.File(tmp_path / "slurm" / "metrics.h5") as a, h5py.File(tmp_path / "direct" / "metrics.h5") as b:
        np.testing.assert_array_equal(a["train/step"][:], np.arange(1, 7))
        np.testing.assert_array_equal(a["train/loss"][:], b["train/loss"][:])


STUDY = """
base = "{base}"
run_root = "{root}"
upstream = "val"
downstream = "val"
[runs.pre]
role = "pretrain"
set = ["schedule.total_steps=6"]
[runs.bad]  # its training data does not exist: it fails, and so must its dependents
role = "pretrain"
set = ["data.train.0.path={d}/missing.h5"]
[runs.child]
role = "rewarm"
set = ["init.from=@pre", "schedule.total_steps=4"]
[runs.orphan]
role = "rewarm"
set = ["init.from=@bad"]
[runs.long]  # stopped mid-way by USR1: requeued, it must end as an unbroken run ends
role = "constant"
set = ["schedule.total_steps=4000", "train.log_interval=10", "train.eval_interval=1000"]
"""


def test_study_as_job_arrays_with_dependencies_requeue_and_report(tmp_path, slurm):
    rng = np.random.default_rng(0)
    write_shard(tmp_path / "train.h5", rng.integers(0, 13, 20000), 13)
    write_shard(tmp_path / "val.h5", rng.integers(0, 13, 600), 13)
    base = write_config(tmp_path / "base.toml", tiny_config(
        tmp_path / "unused", tmp_path / "train.h5", [{"name": "val", "path": str(tmp_path / "val.h5"), "max_sequences": 4}],
        layers=1, schedule={"kind": "constant", "warmup_steps": 0, "total_steps": 8},
        train={"checkpoint_interval": 0, "eval_interval": 2, "log_interval": 1}))
    root = tmp_path / "runs"
    (tmp_path / "study.toml").write_text(STUDY.format(base=base, root=root, d=tmp_path))
    p = subprocess.run([os.path.join(ROOT, "jobscripts", "submit_study.sh"), tmp_path / "study.toml", "--target", "local"],
                       cwd=ROOT, capture_output=True, text=True, check=True, env=JOB_ENV)
    jobs = dict(line.split() for line in (root / "jobs.txt").read_text().splitlines())
    assert set(jobs) == {"pre", "bad", "long", "child", "orphan", "postprocess"}, p.stdout

    # USR1 to the long run once it trains: it checkpoints, exits 75 and requeues itself
    deadline, step = time.time() + 120, 0
    while time.time() < deadline and step < 100:
        try:
            with h5py.File(root / "long" / "metrics.h5", "r", swmr=True) as m:  # while it trains
                logged = m["train/step"]
                step = int(logged[-1]) if len(logged) else 0  # opened, no step logged yet
        except (OSError, KeyError):
            pass
        time.sleep(0.1)
    subprocess.run(["scancel", "--signal=USR1", jobs["long"]], check=True)

    deadline = time.time() + 240
    active = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED")
    # a requeued task can be between records for a moment (no state, or one not listed): wait for its end too
    while time.time() < deadline and (any(job_state(j) in active for j in jobs.values()) or
                                      not (root / "long" / "checkpoints" / "step_00004000.h5").exists()):
        info = subprocess.run(["scontrol", "show", "job", jobs["long"]], capture_output=True, text=True).stdout
        if "Reason=BeginTime" in info:  # SLURM holds a requeued job back two minutes: let it start now
            subprocess.run(["scontrol", "update", f"JobId={jobs['long']}", "StartTime=now"], check=False)
        time.sleep(0.5)
    logs = {f.name: f.read_text() for f in (root / "logs").iterdir()}
    everything = "\n".join(logs.values())
    assert job_state(jobs["postprocess"]) in ("COMPLETED", "GONE"), everything
    assert job_state(jobs["orphan"]) in ("CANCELLED", "GONE"), everything  # never started: its parent failed
    assert not (root / "orphan").exists()
    assert "missing.h5: cannot open" in everything
    long_log = next(v for k, v in logs.items() if k.endswith(jobs["long"].split("_")[0] + "_" + jobs["long"].split("_")[1] + ".out"))
    assert "stopped near the time limit; requeueing" in long_log and long_log.count("run long:") == 2, long_log
    for run, steps in (("pre", 6), ("child", 4)):
        with h5py.File(root / run / "metrics.h5", "r") as m:
            np.testing.assert_array_equal(m["train/step"][:], np.arange(1, steps + 1))
    with h5py.File(root / "long" / "metrics.h5", "r") as m:  # every 10th step once, and the step it stopped at
        steps = m["train/step"][:]
        assert (np.diff(steps) > 0).all()  # none twice
        np.testing.assert_array_equal(steps[steps % 10 == 0], np.arange(10, 4001, 10))
        assert len(steps) <= 401
    # the requeued run ends bit-identical to the same run never stopped
    command = subprocess.run([REWARM, "sweep", tmp_path / "study.toml", "--print-command", "long"], capture_output=True,
                             text=True, check=True).stdout.split()
    rewarm(*command[1:], "--set", f"run_dir={tmp_path}/direct", env={"OMP_NUM_THREADS": "1"})  # the task's one thread
    with h5py.File(root / "long" / "checkpoints" / "step_00004000.h5") as a, \
            h5py.File(tmp_path / "direct" / "checkpoints" / "step_00004000.h5") as b:
        for name in a["model"]:
            np.testing.assert_array_equal(a["model"][name][:], b["model"][name][:])
    # sweep --status reads the same from the run dirs and the job logs (found through jobs.txt)
    state = {r["name"]: r for r in json.loads(rewarm("sweep", tmp_path / "study.toml", "--status", "--json").stdout)["runs"]}
    assert {n: state[n]["state"] for n in ("pre", "long", "child")} == {"pre": "done", "long": "done", "child": "done"}
    assert state["bad"]["state"] == "failed" and "missing.h5: cannot open" in state["bad"]["detail"], state["bad"]
    assert state["orphan"]["state"] == "not started" and state["orphan"]["detail"] == f"SLURM task {jobs['orphan']}"
    # the report names the runs that did not complete
    post = next(v for k, v in logs.items() if "postprocess" in k)
    assert "not complete (2): bad (step 0 of 8), orphan (step 0 of 8)" in post, post
    assert (root / "report" / "summary.csv").exists()


def test_tiny_study_on_slurm(tmp_path, slurm):
    """inputs/studies/tiny.toml itself (its data and run root moved here, --budget ci: seconds a run)
    through submit_study.sh --target local: both stages as arrays, every run complete, the report."""
    for name in ("tiny.toml", "tiny-base.toml"):
        text = open(os.path.join(ROOT, "inputs", "studies", name)).read()
        text = text.replace("data/tiny_", f"{tmp_path}/tiny_").replace('run_root = "runs/tiny"', f'run_root = "{tmp_path}/runs"')
        assert "data/" not in text.replace("# ", "")
        (tmp_path / name).write_text(text)
    subprocess.run([os.path.join(ROOT, "scripts", "tiny_corpora.sh"), tmp_path, "30000"], check=True,
                   capture_output=True, env={**os.environ, "REWARM": REWARM})
    subprocess.run([os.path.join(ROOT, "jobscripts", "submit_study.sh"), tmp_path / "tiny.toml", "--target", "local",
                    "--budget", "ci"], cwd=ROOT, check=True, capture_output=True, env=JOB_ENV)
    root = tmp_path / "runs"
    jobs = dict(line.split() for line in (root / "jobs.txt").read_text().splitlines())
    assert len(jobs) == 14 and jobs["pretrain"].split("_")[0] != jobs["constant"].split("_")[0]  # two arrays
    deadline = time.time() + 240
    while time.time() < deadline and any(job_state(j) in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING")
                                         for j in jobs.values()):
        time.sleep(0.5)
    for run in jobs:
        if run == "postprocess":
            continue
        with h5py.File(root / run / "metrics.h5", "r") as m:
            assert m["train/step"][-1] == 12, run
            assert m["eval/downstream/step"][0] == 0 and m["eval/downstream/step"][-1] == 12, run
    report = root / "report"
    assert (report / "findings.md").exists() and (report / "curves_by_lr_downstream.png").stat().st_size > 5000
    assert len(open(report / "summary.csv").readlines()) == 14  # header and thirteen runs
