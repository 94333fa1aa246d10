"""postprocess/metrics_table.py turns metrics files into one table with the logged values."""
import os
import subprocess
import sys

import h5py
import numpy as np

from helpers import ROOT

SCRIPT = os.path.join(ROOT, "postprocess", "metrics_table.py")


def make_metrics(path, losses):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "rewarm-metrics"
        n = len(losses)
        f["train/step"] = np.arange(1, n + 1)
        f["train/tokens"] = np.arange(1, n + 1) * 64
        f["train/loss"] = np.array(losses)
        f["train/lr"] = np.full(n, 1e-3)
        f["eval/up/step"] = np.array([0, n])
        f["eval/up/tokens"] = np.array([0, n * 64])
        f["eval/up/loss"] = np.array([2.5, 2.0])
        f["eval/up/perplexity"] = np.exp([2.5, 2.0])


def test_table_of_two_runs(tmp_path):
    for run, losses in (("a", [3.0, 2.0]), ("b", [3.5, 2.5, 1.5])):
        os.makedirs(tmp_path / run)
        make_metrics(tmp_path / run / "metrics.h5", losses)
    out = tmp_path / "all.csv"
    subprocess.run([sys.executable, SCRIPT, tmp_path / "a" / "metrics.h5", tmp_path / "b" / "metrics.h5", "--csv", out], check=True)
    import pandas as pd

    t = pd.read_csv(out)
    train_b = t[(t.run == "b") & (t.series == "train")]
    assert list(train_b.loss) == [3.5, 2.5, 1.5]
    assert list(train_b.step) == [1, 2, 3]
    ev = t[(t.run == "a") & (t.series == "eval/up")]
    assert list(ev.step) == [0, 2] and np.allclose(ev.perplexity, np.exp([2.5, 2.0]))
    p = subprocess.run([sys.executable, SCRIPT, tmp_path / "a" / "metrics.h5"], capture_output=True, text=True, check=True)
    assert "eval/up" in p.stdout


def test_rejects_other_files(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.attrs["format"] = "rewarm-tokens"
    p = subprocess.run([sys.executable, SCRIPT, tmp_path / "x.h5"], capture_output=True, text=True)
    assert p.returncode != 0 and "not a rewarm metrics file" in p.stderr
