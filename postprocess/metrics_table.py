#!/usr/bin/python3
"""Print (or save as CSV) the series of one or more rewarm metrics.h5 files as one table.

    postprocess/metrics_table.py runs/*/metrics.h5 [--csv out.csv]

Columns: run, series ("train" or "eval/<set>"), step, tokens, loss, and the series' other
columns (lr, grad_norm, ... for train; perplexity for eval). Needs h5py and pandas."""
import argparse
import os

import h5py
import pandas as pd


def load(path):
    """All series of one metrics file as a long DataFrame."""
    frames = []
    run = os.path.basename(os.path.dirname(os.path.abspath(path)))
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != "rewarm-metrics":
            raise SystemExit(f"{path}: not a rewarm metrics file")
        groups = [("train", f["train"])] if "train" in f else []
        groups += [(f"eval/{name}", g) for name, g in f["eval"].items()] if "eval" in f else []
        for series, g in groups:
            df = pd.DataFrame({k: g[k][:] for k in g.keys()})
            df.insert(0, "series", series)
            df.insert(0, "run", run)
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--csv", help="write the table here instead of printing it")
    args = ap.parse_args()
    table = pd.concat([load(p) for p in args.files], ignore_index=True)
    if args.csv:
        table.to_csv(args.csv, index=False)
    else:
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
