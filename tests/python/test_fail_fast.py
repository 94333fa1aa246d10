"""Every cheap check before any expensive work: a mistyped path or a model that cannot fit fails
in a moment with one line, before the model is allocated and before the run_dir is created; an
allocation that fails all the same is one line too."""
import os
import resource
import subprocess
import time

import numpy as np

from helpers import REWARM, ROOT, rewarm, tiny_config, write_config, write_shard

PYTHIA_410M = os.path.join(ROOT, "inputs", "pythia-410m-rewarm.toml")
SMALL_BATCH = ["--set", 'init.from="random"', "--set", "data.micro_batch=1", "--set", "data.global_batch=8"]


def one_line(p):
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode == 1 and len(lines) == 1, p.stderr
    return lines[0]


def timed(*args, cwd, limit_bytes=None):
    def limit():
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    t0 = time.time()
    p = subprocess.run([REWARM, *map(str, args)], cwd=cwd, capture_output=True, text=True, preexec_fn=limit,
                       env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    return p, time.time() - t0


def pythia_data(d):
    """The 410M config's three shards, with the 512 windows of 2048 tokens its eval sets read."""
    (d / "data").mkdir()
    for name in ("slimpajama_train", "slimpajama_val", "pile_val"):
        write_shard(d / "data" / f"{name}.h5", np.arange(512 * 2048 + 1) % 50000, 50304)


def test_a_missing_shard_is_found_before_the_model_is_built(tmp_path):
    p, seconds = timed("train", PYTHIA_410M, *SMALL_BATCH, cwd=tmp_path)
    assert seconds < 2, seconds
    assert "data/slimpajama_train.h5: cannot open: No such file or directory" in one_line(p)
    assert os.listdir(tmp_path) == []  # nothing written: no run_dir for a run that cannot start
    pythia_data(tmp_path)
    os.remove(tmp_path / "data" / "pile_val.h5")  # the last eval set, too
    p, seconds = timed("train", PYTHIA_410M, *SMALL_BATCH, cwd=tmp_path)
    assert seconds < 2 and "data/pile_val.h5: cannot open" in one_line(p)
    p, seconds = timed("train", PYTHIA_410M, "--set", "data.micro_batch=1", "--set", "data.global_batch=8", cwd=tmp_path)
    assert seconds < 2 and "ckpt/pythia-410m.h5: cannot open" in one_line(p)  # init.from, before the data


def test_a_model_that_cannot_fit_in_host_memory_fails_at_once(tmp_path):
    pythia_data(tmp_path)
    p, seconds = timed("train", PYTHIA_410M, "--set", 'init.from="random"', "--set", "data.micro_batch=1024",
                       "--set", "data.global_batch=1024", cwd=tmp_path)
    line = one_line(p)
    assert seconds < 2, seconds
    assert "the model (405334016 parameters, micro_batch 1024 × seq_len 2048) and its training state: needs about " in line
    assert " GiB of host memory but " in line and " GiB are available (" in line and "lower data.micro_batch" in line
    assert not (tmp_path / "runs").exists()


def test_an_allocation_that_fails_anyway_is_one_line(tmp_path):
    """Under an address-space limit the estimate does not know of: Kokkos' own failure, reworded."""
    pythia_data(tmp_path)
    p, seconds = timed("train", PYTHIA_410M, *SMALL_BATCH, cwd=tmp_path, limit_bytes=3 << 30)
    line = one_line(p)
    assert "out of memory allocating the model (405334016 parameters, micro_batch 1 × seq_len 2048)" in line, line
    assert "estimated " in line and "Traceback" not in p.stderr


def test_a_model_below_the_limit_runs(tmp_path):
    write_shard(tmp_path / "train.h5", np.arange(400) % 13, 13)
    cfg = write_config(tmp_path / "run.toml", tiny_config(tmp_path / "run", tmp_path / "train.h5",
                                                          schedule={"total_steps": 2}))
    assert "train step" in rewarm("train", cfg).stdout
