"""Compares the device check's GPU run with the host's run of it: losses, eval losses and every
final weight, relative to each tensor's largest value. Prints one line per quantity and the JSON
summary; exits 1 if any exceeds the bound (fp32: 1e-5, bf16 against the host's emulation: 1e-2).
Usage: compare.py GPU_RUN_DIR HOST_RUN_DIR PRECISION"""
import json
import sys

import h5py
import numpy as np


def main(gpu, host, precision):
    bound = 1e-5 if precision == "fp32" else 1e-2
    out = {"precision": precision, "bound": bound}
    with h5py.File(f"{gpu}/metrics.h5", "r") as g, h5py.File(f"{host}/metrics.h5", "r") as h:
        out["train_loss"] = float(np.max(np.abs(g["train/loss"][:] / h["train/loss"][:] - 1)))
        out["eval_loss"] = float(np.max(np.abs(g["eval/val/loss"][:] / h["eval/val/loss"][:] - 1)))
        out["grad_norm"] = float(np.max(np.abs(g["train/grad_norm"][:] / h["train/grad_norm"][:] - 1)))
    worst = 0.0
    with h5py.File(f"{gpu}/checkpoints/step_00000020.h5", "r") as g, \
            h5py.File(f"{host}/checkpoints/step_00000020.h5", "r") as h:
        for name in h["model"]:
            a, b = g["model"][name][:].astype(np.float64), h["model"][name][:].astype(np.float64)
            worst = max(worst, float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)))
    out["weights"] = worst
    out["pass"] = all(out[k] <= bound for k in ("train_loss", "eval_loss", "weights"))
    for k in ("train_loss", "eval_loss", "grad_norm", "weights"):
        print(f"  {precision} {k:11s} {out[k]:.3e} (bound {bound:g})")
    print(json.dumps(out))
    return 0 if out["pass"] else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
