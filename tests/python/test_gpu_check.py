"""The device check (bench/gpu/run.sh, bench/gpu/compare.py) before a GPU ever runs it: its
comparison tells rounding-level differences from wrong results, and the whole script runs here as
a dry run on the Debian build (a lent GPU has 15 minutes; a script error there costs the session)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import h5py
import numpy as np
import pytest

from helpers import REWARM, ROOT, rewarm

COMPARE = os.path.join(ROOT, "bench", "gpu", "compare.py")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """scripts/gpu_bundle.sh --cpu: the build under test, the check's inputs and the host's runs of it."""
    out = tmp_path_factory.mktemp("bundle")
    subprocess.run([os.path.join(ROOT, "scripts", "gpu_bundle.sh"), "--cpu"], check=True, capture_output=True,
                   env=dict(os.environ, BUNDLE_DIR=str(out), REWARM_BUILD=os.path.dirname(os.path.dirname(REWARM))))
    return out


def check_run(ref, run_dir, *extra):
    return rewarm("train", ref / "check.toml", "--set", f"run_dir={run_dir}",
                  "--set", f"data.train.0.path={ref / 'train.h5'}", "--set", f"data.eval.0.path={ref / 'val.h5'}",
                  "--set", f"data.tasks.0.path={ref / 'task.h5'}", "--set", "train.checkpoint_interval=2", *extra)


def perturbed_run(ref, run_dir, relative, precision="fp32"):
    """The check's run with every weight multiplied by 1 ± `relative` (random signs) every other
    step: a stand-in for the rounding differences of another machine's kernels."""
    for step in range(2, 21, 2):
        check_run(ref, run_dir, "--stop-at", step, "--set", f'precision.gemm="{precision}"')
        if step == 20:
            break
        rng = np.random.default_rng(step)
        with h5py.File(run_dir / "checkpoints" / f"step_{step:08d}.h5", "r+") as f:
            for d in f["model"].values():
                a = d[:]
                d[...] = (a * (1 + relative * rng.choice([-1.0, 1.0], a.shape))).astype(np.float32)


def scale_one_tensor(run_dir, copy, relative):
    """A copy of run_dir whose final checkpoint has one weight tensor scaled by 1 + relative."""
    shutil.copytree(run_dir, copy)
    with h5py.File(copy / "checkpoints" / "step_00000020.h5", "r+") as f:
        d = f["model"]["gpt_neox.layers.0.mlp.dense_h_to_4h.weight"]
        d[...] = (d[:].astype(np.float64) * (1 + relative)).astype(np.float32)


def compare(gpu, host, precision="fp32"):
    p = subprocess.run([sys.executable, COMPARE, str(gpu), str(host), precision], capture_output=True, text=True)
    return p.returncode, json.loads(p.stdout.strip().splitlines()[-1])


def test_compare_passes_rounding_and_fails_real_differences(bundle, tmp_path):
    ref = bundle / "rewarm-cpu" / "ref"
    rc, same = compare(ref / "host-fp32", ref / "host-fp32")
    assert rc == 0 and same["weights"] == 0 and same["train_loss"] == 0

    perturbed_run(ref, tmp_path / "ulp", 1e-7)
    rc, r = compare(tmp_path / "ulp", ref / "host-fp32")
    # the key bias (no true gradient) moves ~1e-4 and would fail the 1e-5 bound; nothing else does
    assert r["key_bias"] > 1e-4 and 1e-7 < r["weights"] < 2e-6, r
    assert 0 < r["train_loss"] < 1e-7 and r["grad_norm"] < 1e-6 and rc == 0 and r["pass"], r

    perturbed_run(ref, tmp_path / "big", 1e-4)
    rc, r = compare(tmp_path / "big", ref / "host-fp32")
    assert rc == 1 and not r["pass"] and r["weights"] > 1e-5, r

    # the same losses, one tensor off by 1e-3: the weights alone fail it
    scale_one_tensor(ref / "host-fp32", tmp_path / "one", 1e-3)
    rc, r = compare(tmp_path / "one", ref / "host-fp32")
    assert rc == 1 and r["train_loss"] == 0 and abs(r["weights"] - 1e-3) < 1e-6, r

    # bf16: the same tiny changes flip roundings to bf16, and the weights drift 1e-3 apart
    perturbed_run(ref, tmp_path / "bf16", 1e-7, "bf16")
    rc, r = compare(tmp_path / "bf16", ref / "host-bf16", "bf16")
    assert rc == 0 and r["pass"] and 1e-4 < r["weights"] < 5e-3 and r["train_loss"] < 1e-4, r
    # the bf16 run is not the fp32 run: the emulation is on
    rc, r = compare(ref / "host-bf16", ref / "host-fp32")
    assert rc == 1 and r["train_loss"] > 1e-5, r


def dry_run(tmp_path, bundle_tar, models="pythia-14m", fused="optional", stages=(), budget=3000,
            precisions="fp32 bf16", sets="data.seq_len=32"):
    # the device's python3 has h5py; here only the system one does
    (tmp_path / "bin").mkdir(exist_ok=True)
    if not (tmp_path / "bin" / "python3").exists():
        os.symlink(sys.executable, tmp_path / "bin" / "python3")
    env = dict(os.environ, OUT=str(tmp_path / "out"), REWARM_BUNDLE=str(bundle_tar),
               REWARM_CHECK_MODELS=models, REWARM_CHECK_PRECISIONS=precisions,
               REWARM_CHECK_SET=sets, REWARM_CHECK_FUSED=fused, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
               PYTHONPATH=os.path.join(ROOT, "tests", "python", "stubs"))  # transformers' GPT-NeoX: a stand-in
    env["REWARM_CHECK_BUDGET"] = str(budget)  # a GPU's 360 s: too short for every check on a busy CPU
    return subprocess.run(["bash", os.path.join(ROOT, "bench", "gpu", "run.sh"), *stages], env=env,
                          capture_output=True, text=True, timeout=3600)


def test_dry_run_of_the_device_script(bundle, tmp_path):
    p = dry_run(tmp_path, bundle / "rewarm-cpu.tar")
    assert p.returncode == 0, p.stdout[-3000:]
    log = (tmp_path / "out" / "run.log").read_text()
    assert "All tests passed" in log and "status 0" in log
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    # fp32 and bf16 against the host's runs, then bf16 with selective and full recomputation and
    # with ZeRO-3 against the bf16 run: the same kernels on the same inputs, exactly equal here
    assert [c["precision"] for c in res["compare"]] == ["fp32", "bf16", "fp32", "fp32", "fp32"]
    assert all(c["pass"] for c in res["compare"])
    for c in res["compare"][2:]:
        assert c["train_loss"] == c["eval_loss"] == c["grad_norm"] == c["weights"] == 0, c
    assert "-- recompute-selective" in log and "-- recompute-full" in log and "-- zero3" in log
    # no fused attention in a host build: reported as such, not compared
    assert re.search(r"-- bf16-fused: cannot run here: this build runs on (Serial|OpenMP)", log), log
    assert sorted(res["bench"]) == ["pythia-14m-bf16", "pythia-14m-bf16-gemm", "pythia-14m-fp32"]
    assert {b["attention"] for b in res["bench"].values()} == {"gemm"}
    for b in res["bench"].values():
        assert b["tokens_per_second"] > 0 and 0 < b["mfu"] < 1 and b["micro_batch"] == 16, b
        assert b["gemm_size"] == 2048, b  # a CPU's peak GEMM (a GPU's: 8192, test_gpu_build.py)
        assert set(b["phases"]) >= {"forward", "backward", "optimizer", "allreduce", "data"}, b["phases"]
    # the PyTorch baseline at each benchmark's shape, measured once per shape, its ratio printed
    assert sorted(res["torch"]) == sorted(res["bench"])
    for name, t in res["torch"].items():
        b = res["bench"][name]
        assert (t["micro_batch"], t["seq_len"]) == (b["micro_batch"], b["seq_len"]) == (16, 32), t
        assert t["tokens_per_second"] > 0 and not t["out_of_memory"] and 2 < t["loss"] < 20, t
        # the same model: the stand-in's parameter count is rewarm's (no tied or extra weights)
        assert t["parameters"] == b["parameters"], (t, b)
    assert log.count("-- PyTorch baseline at") == 1 and log.count("rewarm/torch") == 3
    assert "skipped:" not in log and "rerun:" not in log
    assert res["torch"]["pythia-14m-bf16"] == res["torch"]["pythia-14m-fp32"]  # one shape, one run


def test_dry_run_fails_when_the_runs_disagree(bundle, tmp_path):
    # a bundle whose host fp32 run is off by 1e-3 in one tensor: the script must say so and fail
    with tarfile.open(bundle / "rewarm-cpu.tar") as t:
        t.extractall(tmp_path / "b")
    ref = tmp_path / "b" / "rewarm-cpu" / "ref"
    scale_one_tensor(ref / "host-fp32", tmp_path / "scaled", 1e-3)
    shutil.rmtree(ref / "host-fp32")
    shutil.move(tmp_path / "scaled", ref / "host-fp32")
    with tarfile.open(tmp_path / "bad.tar", "w") as t:
        t.add(tmp_path / "b" / "rewarm-cpu", arcname="rewarm-cpu")
    p = dry_run(tmp_path, tmp_path / "bad.tar", models=" ", fused="required")  # no benchmarks
    assert p.returncode == 1, p.stdout[-3000:]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [c["pass"] for c in res["compare"]] == [False, True, True, True, True] and res["bench"] == {}, res
    # the last lines name every check that failed
    assert p.stdout.rstrip().endswith("failed: compare fp32\nfailed: train bf16-fused\nstatus 1"), p.stdout[-500:]
    # where the fused attention is required (on a GPU), its failing run fails the check
    assert "train bf16-fused failed:" in p.stdout and "cannot run here" in p.stdout


def test_dry_run_of_chosen_stages(bundle, tmp_path):
    p = dry_run(tmp_path, bundle / "rewarm-cpu.tar", stages=["units", "bogus"])
    assert p.returncode == 2 and "no stage 'bogus' (stages: units train bench variants memcheck)" in p.stderr, p.stderr
    # variants alone (a rerun): the bf16 run they are compared with is made first
    p = dry_run(tmp_path, bundle / "rewarm-cpu.tar", stages=["variants"])
    assert p.returncode == 0 and p.stdout.rstrip().endswith("status 0"), p.stdout[-3000:]
    assert "stages: variants;" in p.stdout and "unit tests" not in p.stdout and "benchmarks" not in p.stdout
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [c["precision"] for c in res["compare"]] == ["fp32"] * 3 and res["bench"] == {}, res
    assert all(c["pass"] and c["weights"] == 0 for c in res["compare"]), res


def test_dry_run_keeps_to_its_budget(bundle, tmp_path):
    # a benchmark far too long for the budget (T = 2048 on a CPU) is cut when the budget runs out,
    # the next is not started: both named as skipped, with the command that reruns their stage
    p = dry_run(tmp_path, bundle / "rewarm-cpu.tar", stages=["bench"], budget=45, precisions="bf16",
                sets="data.seq_len=2048")
    assert p.returncode == 0, p.stdout[-3000:]
    tail = p.stdout.rstrip().splitlines()[-4:]
    assert tail[0].startswith("skipped: bench pythia-14m-bf16 (cut at ") and tail[0].endswith(" s)"), tail
    assert tail[1:] == ["skipped: bench pythia-14m-bf16-gemm", "rerun: bench/gpu/run.sh bench", "status 0"], tail
    assert "-- PyTorch baseline" not in p.stdout  # no benchmark ran: no baseline to match it
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res == {"compare": [], "bench": {}, "torch": {}}, res
