"""The study's figures, as PNG and PDF (matplotlib, no display needed).

curves_by_<axis>_<set>: validation loss against training tokens on one eval set, one line per
value of a grid axis (warmup, max LR, start checkpoint, replay fraction...), a column per
combination of the other axes, the constant-LR and from-scratch baselines dashed, and the
learning-rate schedule of the same runs underneath. tradeoff: final upstream against final
downstream loss, one point per run. task_<task>: a [[data.tasks]] task's accuracy (acc solid,
acc_norm dashed) against training tokens, one line per run, beside the loss curves."""
import itertools
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

AXIS_LABELS = {"lr": "max LR", "warmup": "warmup (% of steps)", "start": "start checkpoint",
               "replay": "replay (% upstream)"}
BASELINE_STYLE = {"constant": dict(color="0.45", ls="--", label="constant LR"),
                  "scratch": dict(color="black", ls=":", label="from scratch"),
                  "control": dict(color="tab:brown", ls="-.", label="control (upstream)")}


def _sort_key(v):
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, 0.0, v)


def _save(fig, out_dir, name):
    paths = []
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=130, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _tokens_axis(ax):
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    ax.set_xlabel("training tokens")


def curves(runs, eval_set, axis, out_dir, study_name=""):
    """Figure curves_by_<axis>_<eval_set>; returns its paths (none when no run varies `axis`)."""
    grid = [r for r in runs if r.role == "rewarm" and axis in r.tags and len(r.eval(eval_set))]
    if len({r.tags[axis] for r in grid}) < 2:
        return []
    others = sorted({k for r in grid for k in r.tags if k != axis})
    columns = sorted({tuple(r.tags.get(k, "") for k in others) for r in grid},
                     key=lambda c: [_sort_key(v) for v in c])[:4]
    values = sorted({r.tags[axis] for r in grid}, key=_sort_key)
    colors = dict(zip(values, plt.cm.viridis(np.linspace(0, 0.9, len(values)))))
    fig, axes = plt.subplots(2, len(columns), figsize=(4.4 * len(columns) + 0.8, 6.4), sharex="col", sharey="row",
                             gridspec_kw={"height_ratios": [3, 1.2]}, squeeze=False, layout="constrained")
    baselines = [r for r in runs if r.role in BASELINE_STYLE and len(r.eval(eval_set))]
    # The y range holds the pre-trained runs: training from scratch starts far above them and
    # would flatten their curves (the paper's regime: a bump of hundredths of a nat), so its
    # curve leaves the top of the axis while it is higher.
    near = [r.eval(eval_set)["loss"] for r in grid + [b for b in baselines if b.role != "scratch"]]
    lo, hi = (min(float(np.nanmin(x)) for x in near), max(float(np.nanmax(x)) for x in near))
    clip = any(b.role == "scratch" and float(np.nanmax(b.eval(eval_set)["loss"])) > hi for b in baselines)
    for j, col in enumerate(columns):
        top, bottom = axes[0][j], axes[1][j]
        for r in sorted(grid, key=lambda r: _sort_key(r.tags[axis])):  # legend in axis order
            if tuple(r.tags.get(k, "") for k in others) != col:
                continue
            e = r.eval(eval_set)
            style = dict(color=colors[r.tags[axis]], label=f"{AXIS_LABELS.get(axis, axis)} {r.tags[axis]}")
            top.plot(e["tokens"], e["loss"], lw=1.6, **style)
            if len(r.train):
                bottom.plot(r.train["tokens"], r.train["lr"], lw=1.3, color=style["color"])
        for b in baselines:
            e = b.eval(eval_set)
            style = dict(BASELINE_STYLE[b.role])
            if clip and b.role == "scratch":
                style["label"] += " (above the axis at first)"
            top.plot(e["tokens"], e["loss"], lw=1.3, **style)
            if len(b.train):
                bottom.plot(b.train["tokens"], b.train["lr"], lw=1.0, color=BASELINE_STYLE[b.role]["color"],
                            ls=BASELINE_STYLE[b.role]["ls"])
        title = ", ".join(f"{AXIS_LABELS.get(k, k)} {v}" for k, v in zip(others, col))
        top.set_title(title or f"by {AXIS_LABELS.get(axis, axis)}", fontsize=10)
        top.grid(alpha=0.3)
        if clip and np.isfinite(lo) and np.isfinite(hi):
            pad = 0.06 * max(hi - lo, 1e-3)
            top.set_ylim(lo - pad, hi + pad)
        bottom.set_yscale("log")
        bottom.grid(alpha=0.3)
        _tokens_axis(bottom)
    axes[0][0].set_ylabel(f"{eval_set} validation loss (nats/token)")
    axes[1][0].set_ylabel("learning rate")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 6), fontsize=8.5,
               frameon=False)
    fig.suptitle(f"{study_name}: {eval_set} loss by {AXIS_LABELS.get(axis, axis)}".strip(": "), fontsize=12)
    return _save(fig, out_dir, f"curves_by_{axis}_{eval_set}")


def tradeoff(table, upstream, downstream, out_dir, study_name=""):
    """Final upstream against final downstream loss, one point per run: re-warmed runs coloured by
    their first grid axis (max LR when there is one) and shaped by the second, the others labelled."""
    up, down = f"{upstream}_final", f"{downstream}_final"
    if up not in table or down not in table:
        return []
    t = table.dropna(subset=[up, down])
    fig, ax = plt.subplots(figsize=(7.2, 5.4), layout="constrained")
    role_markers = {"constant": "s", "scratch": "X", "control": "^", "pretrain": "*", "replay": "D"}
    for role, g in t[t.role != "rewarm"].groupby("role"):
        ax.scatter(g[up], g[down], marker=role_markers.get(role, "o"), s=60, color="0.35", zorder=3)
        for _, row in g.iterrows():
            ax.annotate(row["run"], (row[up], row[down]), fontsize=7.5, xytext=(4, 4), textcoords="offset points")
    rew = t[t.role == "rewarm"]
    axes = sorted((c[4:] for c in rew.columns if c.startswith("tag_") and rew[c].notna().any()),
                  key=lambda a: (a != "lr", a))
    if len(rew):
        first = axes[0] if axes else None
        second = axes[1] if len(axes) > 1 else None
        values = sorted(rew[f"tag_{first}"].dropna().unique(), key=_sort_key) if first else [None]
        shapes = sorted(rew[f"tag_{second}"].dropna().unique(), key=_sort_key) if second else [None]
        colors = dict(zip(values, plt.cm.viridis(np.linspace(0, 0.9, len(values)))))
        marks = dict(zip(shapes, "ovD^sP"))
        for _, row in rew.iterrows():
            ax.scatter(row[up], row[down], s=52, zorder=4, color=colors[row[f"tag_{first}"]] if first else "tab:blue",
                       marker=marks[row[f"tag_{second}"]] if second else "o", edgecolor="black", linewidth=0.4)
        handles = [plt.Line2D([], [], ls="", marker="o", color=colors[v], label=f"{AXIS_LABELS.get(first, first)} {v}")
                   for v in values if first]
        handles += [plt.Line2D([], [], ls="", marker=marks[v], color="0.5", label=f"{AXIS_LABELS.get(second, second)} {v}")
                    for v in shapes if second]
        if handles:
            ax.legend(handles=handles, fontsize=8, title="re-warmed runs", title_fontsize=8)
    # Training from scratch ends far from the pre-trained runs (tenths of a nat against their
    # hundredths): the axes hold the others, and the scratch point is named in a corner.
    near, far = t[t.role != "scratch"], t[t.role == "scratch"]
    if len(near) >= 2 and len(far):
        lo, hi = near[[up, down]].min(), near[[up, down]].max()
        pad = np.maximum((hi - lo) * 0.12, 0.002)
        if ((far[[up, down]] > hi + 3 * pad) | (far[[up, down]] < lo - 3 * pad)).any(axis=None):
            ax.set_xlim(lo[up] - pad[up], hi[up] + pad[up])
            ax.set_ylim(lo[down] - pad[down], hi[down] + pad[down])
            ax.text(0.98, 0.02, "\n".join(f"{r['run']}: ({r[up]:.4f}, {r[down]:.4f}), off the axes"
                                          for _, r in far.iterrows()),
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5, color="0.3")
    ax.set_xlabel(f"final {upstream} loss (forgetting: right is worse)")
    ax.set_ylabel(f"final {downstream} loss (gain: down is better)")
    ax.grid(alpha=0.3)
    ax.set_title(f"{study_name}: upstream against downstream, final losses".strip(": "), fontsize=11)
    return _save(fig, out_dir, "tradeoff")


def task_curves(runs, task, out_dir, study_name=""):
    """Figure task_<task>: every run's accuracy on the task against training tokens."""
    scored = [r for r in runs if len(r.tasks.get(task, []))]
    if not scored:
        return []
    fig, ax = plt.subplots(figsize=(7.2, 4.4), layout="constrained")
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(scored), 1)))
    for r, color in zip(sorted(scored, key=lambda r: r.name), colors):
        t = r.tasks[task]
        style = dict(BASELINE_STYLE[r.role]) if r.role in BASELINE_STYLE else dict(color=color, ls="-")
        style["label"] = r.name
        ax.plot(t["tokens"], t["acc"], lw=1.5, marker="o", ms=3, **style)
        if t["acc_norm"].notna().any():
            ax.plot(t["tokens"], t["acc_norm"], lw=1.0, color=style["color"], ls=":", alpha=0.8)
    ax.set_ylabel(f"{task} accuracy (acc solid, acc_norm dotted)")
    ax.grid(alpha=0.3)
    _tokens_axis(ax)
    ax.legend(fontsize=7.5, ncol=2, frameon=False)
    ax.set_title(f"{study_name}: {task}".strip(": "), fontsize=11)
    return _save(fig, out_dir, f"task_{task}")


def all_figures(runs, table, upstream, downstream, out_dir, study_name=""):
    os.makedirs(out_dir, exist_ok=True)
    axes = sorted({k for r in runs if r.role == "rewarm" for k in r.tags})
    sets = sorted({s for r in runs for s in r.evals})
    paths = []
    for axis, s in itertools.product(axes, sets):
        paths += curves(runs, s, axis, out_dir, study_name)
    paths += tradeoff(table, upstream, downstream, out_dir, study_name)
    for task in sorted({t for r in runs for t in r.tasks}):
        paths += task_curves(runs, task, out_dir, study_name)
    return paths
