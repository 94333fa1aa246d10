"""Reading runs: a study manifest (`rewarm sweep STUDY --manifest FILE`) or plain metrics.h5
files, into Run objects holding each run's role, tags and logged series. Safe while runs are
still going: rewarm writes metrics.h5 in HDF5's SWMR mode, which a reader opens with swmr=True
(also after a killed run), and a run without one yet is kept as empty."""
import json
import os
import tomllib
from dataclasses import dataclass, field

import h5py
import numpy as np
import pandas as pd


@dataclass
class Run:
    name: str
    role: str = "run"
    tags: dict = field(default_factory=dict)
    run_dir: str = ""
    total_steps: int = 0
    train: pd.DataFrame = field(default_factory=pd.DataFrame)  # step, tokens, lr, loss, ...
    evals: dict = field(default_factory=dict)  # eval set -> DataFrame(step, tokens, loss, perplexity)
    tasks: dict = field(default_factory=dict)  # [[data.tasks]] task -> DataFrame(step, tokens, acc, acc_norm)

    @property
    def steps_done(self):
        return int(self.train["step"].iloc[-1]) if len(self.train) else 0

    @property
    def complete(self):
        return self.total_steps > 0 and self.steps_done >= self.total_steps

    def eval(self, name):
        return self.evals.get(name, pd.DataFrame(columns=["step", "tokens", "loss"]))


def read_metrics(path):
    """(train DataFrame, {set: DataFrame}, {task: DataFrame}, total_steps or 0) of one metrics.h5."""
    with h5py.File(path, "r", swmr=True) as f:
        if f.attrs.get("format") != "rewarm-metrics":
            raise SystemExit(f"{path}: not a rewarm metrics file")

        def frame(g):  # a killed writer can leave a group's series a record apart: keep the rows all hold
            series = {k: np.asarray(g[k][:]) for k in g.keys()}
            rows = min((len(v) for v in series.values()), default=0)
            return pd.DataFrame({k: v[:rows] for k, v in series.items()})

        train = frame(f["train"]) if "train" in f else pd.DataFrame()
        evals = {name: frame(g) for name, g in f["eval"].items()} if "eval" in f else {}
        tasks = {name: frame(g) for name, g in f["tasks"].items()} if "tasks" in f else {}
        config = f.attrs.get("config", "")
        config = tomllib.loads(config.decode() if isinstance(config, bytes) else config) if config else {}
        # the run's steps: the moment warmup's, then the schedule's
        total = (config.get("schedule", {}).get("total_steps", 0) +
                 config.get("optimizer", {}).get("moment_warmup_steps", 0))
    return train, evals, tasks, total


def load_run(name, run_dir, role="run", tags=None, total_steps=0, path=None):
    """A run from its metrics file (run_dir/metrics.h5 unless `path`); empty if there is none yet."""
    run = Run(name=name, role=role, tags=dict(tags or {}), run_dir=run_dir, total_steps=total_steps)
    path = path or os.path.join(run_dir, "metrics.h5")
    if os.path.exists(path):
        run.train, run.evals, run.tasks, total = read_metrics(path)
        run.total_steps = run.total_steps or total
    return run


def load_study(manifest):
    """(study dict, [Run]) from a manifest written by `rewarm sweep --manifest`. Run dirs are
    taken relative to the manifest's run_root when the recorded path does not exist from here."""
    with open(manifest) as f:
        study = json.load(f)
    if study.get("format") != "rewarm-study":
        raise SystemExit(f"{manifest}: not a rewarm study manifest (rewarm sweep STUDY --manifest FILE)")
    here = os.path.dirname(os.path.abspath(manifest))
    runs = []
    for r in study["runs"]:
        run_dir = r["run_dir"]
        if not os.path.isdir(run_dir):  # the manifest sits in run_root: find the run beside it
            run_dir = os.path.join(here, os.path.basename(run_dir))
        runs.append(load_run(r["name"], run_dir, r.get("role", "run"), r.get("tags", {}), r.get("total_steps", 0)))
    return study, runs


def load_files(paths):
    """Runs from metrics.h5 paths, named by their run directory, with no role or tags."""
    out = []
    for p in paths:
        if not os.path.exists(p):
            raise SystemExit(f"{p}: no such file")
        d = os.path.dirname(os.path.abspath(p))
        out.append(load_run(os.path.basename(d), d, path=p))
    return out


def long_table(runs):
    """Every logged series of every run as one long table: run, series, step, tokens, values."""
    frames = []
    for r in runs:
        for series, df in ([("train", r.train)] + [(f"eval/{k}", v) for k, v in r.evals.items()] +
                           [(f"tasks/{k}", v) for k, v in r.tasks.items()]):
            if len(df):
                df = df.copy()
                df.insert(0, "series", series)
                df.insert(0, "run", r.name)
                frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
