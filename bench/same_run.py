"""Whether two rewarm binaries train the same runs bit for bit: a change that should move no
number (a refactor, a build option) is checked by running both on the same small runs, fp32 and
bf16, every ZeRO stage, with and without recomputation, overlap and fp32 reduction, on 1 and 2
ranks, and comparing every tensor of the final checkpoints and every logged loss, gradient norm
and LR. Prints one line per run and exits non-zero on any difference.

    /usr/bin/python3 bench/same_run.py OLD_REWARM NEW_REWARM [--keep DIR]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from helpers import tiny_config, write_config, write_shard  # noqa: E402

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))

# (name, ranks, sections): 8 samples per step in micro-batches of 1 or 2; clipping active
RUNS = [("fp32", 1, {}),
        ("bf16", 1, {"precision": {"gemm": "bf16"}}),
        ("fp32-direct", 1, {"data": {"micro_batch": 4, "global_batch": 4}}),
        ("bf16-recompute-full", 1, {"precision": {"gemm": "bf16"}, "memory": {"recompute": "full"}})]
for zero in (0, 1, 2, 3):
    for gemm in ("fp32", "bf16"):
        RUNS.append((f"{gemm}-zero{zero}-2ranks", 2, {"parallel": {"zero": zero}, "precision": {"gemm": gemm}}))
RUNS += [("fp32-overlap-2ranks", 2, {"parallel": {"overlap": True}}),
         ("fp32-reduce-fp32-2ranks", 2, {"parallel": {"reduce": "fp32"}}),
         ("fp32-zero1-reduce-fp32-2ranks", 2, {"parallel": {"zero": 1, "reduce": "fp32"}}),
         ("bf16-zero3-selective-2ranks", 2, {"parallel": {"zero": 3}, "precision": {"gemm": "bf16"},
                                             "memory": {"recompute": "selective"}})]


def train(binary, cfg, ranks):
    cmd = [binary, "train", str(cfg)]
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), "--bind-to", "none"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")


def final_state(run_dir, steps):
    out = {}
    with h5py.File(os.path.join(run_dir, "checkpoints", f"step_{steps:08d}.h5"), "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    with h5py.File(os.path.join(run_dir, "metrics.h5"), "r") as m:
        for k in ("loss", "grad_norm", "lr"):
            out[f"train/{k}"] = m[f"train/{k}"][()]
        for k in m["eval"]:
            out[f"eval/{k}/loss"] = m[f"eval/{k}/loss"][()]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--keep", help="a directory for the runs (default: a temporary one, removed)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = args.keep or tmp
        os.makedirs(d, exist_ok=True)
        rng = np.random.default_rng(0)
        write_shard(os.path.join(d, "train.h5"), rng.integers(0, 13, 3000), 13)
        write_shard(os.path.join(d, "val.h5"), rng.integers(0, 13, 500), 13)
        steps, different = 6, 0
        for name, ranks, sections in RUNS:
            sections = {k: dict(v) for k, v in sections.items()}
            sections.setdefault("data", {"micro_batch": 1, "global_batch": 8})
            sections["optimizer"] = {"lr": 1e-2, "grad_clip": 0.3}
            sections["schedule"] = {"total_steps": steps, "warmup_steps": 2}
            sections["train"] = {"eval_interval": 3, "checkpoint_interval": 3, "log_interval": 1}
            states = []
            run_dir = os.path.join(d, name)  # the same for both: the checkpoints store the config
            cfg = tiny_config(run_dir, os.path.join(d, "train.h5"),
                              [{"name": "val", "path": os.path.join(d, "val.h5"), "max_sequences": 7}], **sections)
            toml = write_config(os.path.join(d, f"{name}.toml"), cfg)
            for which, binary in (("old", args.old), ("new", args.new)):
                train(binary, toml, ranks)
                states.append(final_state(run_dir, steps))
                os.rename(run_dir, f"{run_dir}-{which}")
            a, b = states
            diffs = sorted(k for k in set(a) | set(b)
                           if k not in a or k not in b or a[k].shape != b[k].shape or
                           a[k].tobytes() != b[k].tobytes())
            different += bool(diffs)
            print(f"{name:32s} {'bit for bit' if not diffs else 'DIFFERENT: ' + ', '.join(diffs[:5])}")
        print(f"{len(RUNS) - different} of {len(RUNS)} runs the same bit for bit")
        sys.exit(1 if different else 0)


if __name__ == "__main__":
    main()
