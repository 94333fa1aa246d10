"""jobscripts/slurm_train.sbatch on a real (one-node, local) SLURM: a job stopped with
--stop-at and resubmitted resumes from its checkpoint and ends where an unbroken run ends."""
import os
import subprocess
import time

import h5py
import numpy as np
import pytest

from helpers import REWARM, ROOT, rewarm, tiny_config, write_config, write_shard

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starting munge and SLURM needs root")


def submit(*args, out):
    """sbatch from the repository root (the job script runs build/src/rewarm); waits for the end."""
    jid = subprocess.run(["sbatch", "--parsable", "--cpus-per-task=1", f"--output={out}",
                          "jobscripts/slurm_train.sbatch", *map(str, args)],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
    for _ in range(300):
        info = subprocess.run(["scontrol", "show", "job", jid], capture_output=True, text=True).stdout
        state = info.split("JobState=")[1].split()[0] if "JobState=" in info else "GONE"
        if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            return state, open(out).read()
        time.sleep(0.5)
    raise AssertionError(f"SLURM job {jid} did not finish in 150 s")


@pytest.mark.skipif(os.path.realpath(REWARM) != os.path.realpath(os.path.join(ROOT, "build", "src", "rewarm")),
                    reason="the job script runs build/src/rewarm")
def test_job_stops_and_resumes(tmp_path):
    subprocess.run([os.path.join(ROOT, "scripts", "slurm_local.sh")], check=True)
    rng = np.random.default_rng(0)
    write_shard(tmp_path / "train.h5", rng.integers(0, 13, 4000), 13)
    for name in ("slurm", "direct"):
        write_config(tmp_path / f"{name}.toml", tiny_config(tmp_path / name, tmp_path / "train.h5", layers=1,
                                                            schedule={"total_steps": 6}, train={"checkpoint_interval": 0}))

    state, log = submit(tmp_path / "slurm.toml", "--stop-at", 3, out=tmp_path / "job1.out")
    assert state == "COMPLETED", log
    assert "train step      3" in log and "train step      4" not in log and "stopped after step 3" in log
    state, log = submit(tmp_path / "slurm.toml", out=tmp_path / "job2.out")
    assert state == "COMPLETED", log
    assert "train step      3" not in log and "train step      4" in log and "train step      6" in log

    rewarm("train", tmp_path / "direct.toml")  # the same run, never stopped, outside SLURM
    with h5py.File(tmp_path / "slurm" / "metrics.h5") as a, h5py.File(tmp_path / "direct" / "metrics.h5") as b:
        np.testing.assert_array_equal(a["train/step"][:], np.arange(1, 7))
        np.testing.assert_array_equal(a["train/loss"][:], b["train/loss"][:])
