"""The same numbers whatever runs them: a run repeats itself bit for bit on the same threads,
team size and ranks; another thread count, team size or backend changes only the order of some
sums (docs/numerics.md), which moves the results by rounding alone: within the tolerances the
tests hold against PyTorch. The OpenMP build is compared with the Debian (Serial) build at
REWARM_SERIAL_BIN (default build/src/rewarm), where the OpenMP tests run beside it."""
import os
import re
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from helpers import REWARM, ROOT, rewarm, tiny_config, write_config, write_shard

SERIAL = os.environ.get("REWARM_SERIAL_BIN", os.path.join(ROOT, "build", "src", "rewarm"))
MPI_ENV = dict(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")


@pytest.fixture
def d(tmp_path):
    rng = np.random.default_rng(0)
    write_shard(tmp_path / "train.h5", rng.integers(0, 37, 6000), 37)
    write_shard(tmp_path / "val.h5", rng.integers(0, 37, 800), 37)
    return tmp_path


def config(d, run, **sections):
    """Two layers wide enough for several threads per row (hidden 64, 4 heads), clipping active,
    8 sequences per step in micro-batches of 2, an eval set."""
    # eps 1e-6 as in test_torch_reference.py: the k bias outside the rotary dims has an exactly-zero
    # true gradient, where AdamW would blow rounding noise up to ±lr
    sections.setdefault("optimizer", {"lr": 3e-3, "grad_clip": 0.3, "eps": 1e-6})
    cfg = tiny_config(d / run, d / "train.h5", [{"name": "val", "path": str(d / "val.h5"), "max_sequences": 6}],
                      model={"vocab_size": 37, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
                             "num_hidden_layers": 2, "max_position_embeddings": 32},
                      data={"seq_len": 32, "micro_batch": 2, "global_batch": 8},
                      schedule={"kind": "cosine", "warmup_steps": 2, "total_steps": 6},
                      train={"eval_interval": 3, "checkpoint_interval": 6}, **sections)
    return write_config(d / f"{run}.toml", cfg)


def train(d, run, binary=REWARM, ranks=1, env=None):
    """Trains run; returns its compute line ("OpenMP, 2 threads per rank ...")."""
    cmd = [binary, "train", config(d, run)]
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), "--oversubscribe", "--bind-to", "none"] + cmd  # threads as on one rank
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **MPI_ENV, **(env or {})))
    assert p.returncode == 0, p.stdout + p.stderr
    return re.search(r"^compute: (.*)$", p.stdout, re.M).group(1)


def results(d, run):
    with h5py.File(d / run / "checkpoints" / "step_00000006.h5", "r") as f:
        out = {}
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) and
                     n.startswith(("model/", "optimizer/")) else None)
    with h5py.File(d / run / "metrics.h5", "r") as m:
        for k in ("train/loss", "train/grad_norm", "eval/val/loss"):
            out[k] = m[k][:]
    return out


def assert_bitwise(a, b, what):
    """Weights, moments and logged losses to the bit."""
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{what}: {k} differs"


def assert_within_rounding(a, b, what):
    """About the tolerances test_torch_reference.py holds against PyTorch (weights 1e-5 absolute,
    moments 2e-5 of their largest value, losses and norms 3e-7 and 6e-7 relative), a little wider
    where measured so: another thread count also splits the GEMMs otherwise, and teams of 3 sum
    LayerNorm's and attention's rows in thirds, which moved one second moment by 2.2e-5 of its
    tensor's largest and a gradient norm by 7e-7 here (bounds: 3x that)."""
    for k in a:
        if k.startswith("model/"):
            np.testing.assert_allclose(a[k], b[k], atol=1e-5, rtol=0, err_msg=f"{what}: {k}")
        elif k.startswith("optimizer/"):
            np.testing.assert_allclose(a[k], b[k], atol=6e-5 * float(np.abs(b[k]).max()), rtol=0, err_msg=f"{what}: {k}")
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=2e-6 if "grad_norm" in k else 1e-6, err_msg=f"{what}: {k}")


@pytest.mark.long_numbers
def test_a_run_repeats_itself_bit_for_bit(d):
    """No floating-point atomics, no sum whose order depends on scheduling: the same run twice
    on the same threads (and ranks) is the same to the bit."""
    for run in ("a", "b"):
        compute = train(d, run)
    assert_bitwise(results(d, "a"), results(d, "b"), compute)
    if shutil.which("mpirun"):
        # every rank on the same threads as the one rank: a BLAS splits a product over its
        # threads, and another split rounds otherwise (docs/numerics.md)
        threads = {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
        train(d, "a2", env=threads)
        for run in ("m2a", "m2b"):
            train(d, run, ranks=2, env=threads)
        assert_bitwise(results(d, "m2a"), results(d, "m2b"), "2 ranks")
        # and 2 ranks end as 1 does, the logged losses too (test_mpi.py's matrices hold them all)
        assert_bitwise(results(d, "a2"), results(d, "m2a"), "2 ranks against 1")


@pytest.mark.long_numbers
def test_thread_counts_and_team_sizes_change_only_the_rounding(d):
    compute = train(d, "one", env={"OMP_NUM_THREADS": "1", "REWARM_TEAM_SIZE": "1"})
    if not compute.startswith("OpenMP"):
        assert compute.startswith(("Serial", "Threads")), compute
        return  # a single thread: nothing to vary
    one = results(d, "one")
    for threads, team in (("2", "1"), ("2", "2"), ("3", "3")):
        run = f"t{threads}x{team}"
        assert train(d, run, env={"OMP_NUM_THREADS": threads, "REWARM_TEAM_SIZE": team}).startswith(
            f"OpenMP, {threads} threads per rank")
        assert_within_rounding(results(d, run), one, f"{threads} threads, teams of {team}")
    # the same threads and team size again: to the bit
    train(d, "t2x2again", env={"OMP_NUM_THREADS": "2", "REWARM_TEAM_SIZE": "2"})
    assert_bitwise(results(d, "t2x2again"), results(d, "t2x2"), "2 threads, teams of 2, twice")


@pytest.mark.long_numbers
def test_openmp_matches_the_serial_build(d):
    compute = train(d, "here")
    if not compute.startswith("OpenMP"):
        return  # this is the Serial build: the OpenMP tests compare with it
    if not os.path.exists(SERIAL):
        pytest.skip(f"no Serial build at {SERIAL} to compare with (scripts/setup.sh makes it)")
    assert train(d, "serial", binary=SERIAL).startswith("Serial")
    assert_within_rounding(results(d, "here"), results(d, "serial"), "OpenMP against Serial")


def test_the_compute_line_says_what_runs_and_idle_openmp_threads_sleep(d):
    """A plain command gets OMP_WAIT_POLICY=passive (the OpenMP runtime reads it before main, so
    rewarm starts itself again with it); a wait policy of the user's is kept; where a binding is
    asked for (the runtime has bound the first thread already) rewarm does not start again but
    says what to set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_") or k == "OMP_NUM_THREADS"}

    def compute(extra):
        p = subprocess.run([REWARM, "train", config(d, "c"), "--stop-at", "1", "--set", f"run_dir={d}/c{len(extra)}"],
                           capture_output=True, text=True, env=dict(env, **extra))
        assert p.returncode == 0, p.stderr
        return re.search(r"^compute: (.*)$", p.stdout, re.M).group(1)

    plain = compute({})
    if not plain.startswith("OpenMP"):
        assert re.fullmatch(r"Serial, 1 thread per rank; GEMMs: OpenBLAS \S+ on (its own )?\d+ threads?", plain), plain
        return
    threads = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))
    assert re.fullmatch(rf"OpenMP, {threads} threads? per rank \(OMP_PROC_BIND=false, OMP_PLACES=unset, "
                        rf"OMP_WAIT_POLICY=passive\); GEMMs: OpenBLAS \S+ on .*", plain), plain
    assert "OMP_WAIT_POLICY=active)" in compute({"OMP_WAIT_POLICY": "active"})
    bound = compute({"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"})
    assert "(OMP_PROC_BIND=close, OMP_PLACES=cores, OMP_WAIT_POLICY unset: export OMP_WAIT_POLICY=passive)" in bound


def test_a_team_size_the_backend_cannot_run_is_one_line(d):
    for value, says in (("x", "REWARM_TEAM_SIZE=x: not a team size (a whole number of threads, 1 to 1024)"),
                        ("64", "REWARM_TEAM_SIZE=64: a team cannot have more threads than the ")):
        p = subprocess.run([REWARM, "train", config(d, "t")], capture_output=True, text=True,
                           env=dict(os.environ, REWARM_TEAM_SIZE=value, OMP_NUM_THREADS="2"))
        lines = p.stderr.splitlines()
        assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"rewarm: error: {says}"), p.stderr
    assert not (d / "t").exists()
