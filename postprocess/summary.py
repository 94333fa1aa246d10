"""The numbers of a re-warming study, per run, and the paper's findings tested on them.

Per run and eval set: final and best loss; the peak rise of the loss above its step-0 value (the
re-warming bump) and the step where it peaks. Forgetting = final − initial loss on the upstream
set; gain = initial − final loss on the downstream set. Tokens until the downstream loss drops
below the constant-LR baseline's, and below training from scratch's, at the same token count
(the baseline's curve interpolated): the first evaluation at which it is lower."""
import numpy as np
import pandas as pd

BASELINE_ROLES = ("constant", "scratch")


def baseline(runs, role, like=None):
    """The run of `role`; with several, the one sharing most tags with `like`."""
    candidates = [r for r in runs if r.role == role and len(r.train)]
    if not candidates:
        return None
    if like is None or len(candidates) == 1:
        return candidates[0]
    return max(candidates, key=lambda r: sum(r.tags.get(k) == v for k, v in like.tags.items()))


def first_below(run, other, eval_set):
    """Tokens at the first evaluation where run's loss on eval_set is below other's curve at the
    same tokens (np.nan if never, or if either has no such series)."""
    a, b = run.eval(eval_set), other.eval(eval_set) if other is not None else None
    if b is None or len(a) < 1 or len(b) < 2:
        return np.nan
    ref = np.interp(a["tokens"], b["tokens"], b["loss"], left=np.nan, right=np.nan)
    below = np.flatnonzero(a["loss"].to_numpy() < ref)
    return float(a["tokens"].iloc[below[0]]) if len(below) else np.nan


def rise(df):
    """(largest loss − loss at the first evaluation, its step), or (0, nan) without a rise."""
    if len(df) < 2:
        return 0.0, np.nan
    d = df["loss"].to_numpy() - df["loss"].iloc[0]
    k = int(np.argmax(d))
    return (float(d[k]), float(df["step"].iloc[k])) if d[k] > 0 else (0.0, np.nan)


def summary(runs, upstream, downstream):
    """One row per run (DataFrame) with the columns the module docstring defines."""
    rows = []
    for r in runs:
        row = {"run": r.name, "role": r.role, **{f"tag_{k}": v for k, v in r.tags.items()},
               "steps": r.steps_done, "total_steps": r.total_steps, "complete": r.complete,
               "tokens": int(r.train["tokens"].iloc[-1]) if len(r.train) else 0}
        for name, df in sorted(r.evals.items()):
            if not len(df):
                continue
            best = int(np.argmin(df["loss"]))
            up, at = rise(df)
            row.update({f"{name}_initial": float(df["loss"].iloc[0]), f"{name}_final": float(df["loss"].iloc[-1]),
                        f"{name}_best": float(df["loss"].iloc[best]), f"{name}_best_step": int(df["step"].iloc[best]),
                        f"{name}_rise": up, f"{name}_rise_step": at})
        for name, df in sorted(r.tasks.items()):  # downstream tasks: where they start and end
            if len(df):
                row.update({f"{name}_acc_initial": float(df["acc"].iloc[0]), f"{name}_acc_final": float(df["acc"].iloc[-1])})
                if not np.isnan(df["acc_norm"].iloc[-1]):
                    row[f"{name}_acc_norm_final"] = float(df["acc_norm"].iloc[-1])
        if upstream in r.evals and len(r.evals[upstream]):
            row["forgetting"] = row[f"{upstream}_final"] - row[f"{upstream}_initial"]
        if downstream in r.evals and len(r.evals[downstream]):
            row["gain"] = row[f"{downstream}_initial"] - row[f"{downstream}_final"]
            for role in BASELINE_ROLES:  # for the runs trained on the downstream data
                other = baseline(runs, role, like=r)
                row[f"tokens_to_beat_{role}"] = (first_below(r, other, downstream)
                                                 if r.role not in ("pretrain", "control", role) else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


# The rules the findings are judged by (docs/studies.md states them too).
MARGIN = 0.005  # nats: a rise of the loss, or a difference between two runs, smaller than this is noise
UNSTABLE_MARGIN = 0.05  # nats: a re-warmed run ending this far above the median re-warmed run is unstable


def _as_number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def stability(table, downstream):
    """Marks the re-warmed runs that diverged or were unstable, in columns `stability` ("",
    "diverged", "unstable") and `stability_why`. Diverged: its final downstream loss is not
    finite, or not below its initial one (it ended where it started or above). Unstable: it ends
    more than UNSTABLE_MARGIN above the median final downstream loss of the re-warmed runs."""
    table = table.copy()
    table["stability"], table["stability_why"] = "", ""
    final, initial = f"{downstream}_final", f"{downstream}_initial"
    if final not in table:
        return table
    rew = table[(table.role == "rewarm") & table[final].notna()]
    median = float(rew[final].median()) if len(rew) else np.nan
    for i, row in rew.iterrows():
        if not np.isfinite(row[final]) or row[final] >= row[initial]:
            table.loc[i, ["stability", "stability_why"]] = [
                "diverged", f"ends downstream at {row[final]:.4f}, not below its start {row[initial]:.4f}"]
        elif row[final] > median + UNSTABLE_MARGIN:
            table.loc[i, ["stability", "stability_why"]] = [
                "unstable", f"ends downstream at {row[final]:.4f}, {row[final] - median:.4f} above the median "
                            f"re-warmed run ({median:.4f}; the rule: more than {UNSTABLE_MARGIN})"]
    return table


def _tested(rew, table, upstream, downstream):
    """The paper's four findings tested on the re-warmed runs `rew`: (statement, holds: bool|None, evidence)."""
    out = []
    up_rise, down_rise = f"{upstream}_rise", f"{downstream}_rise"
    if len(rew) and up_rise in rew and down_rise in rew:
        both = rew[(rew[up_rise] > MARGIN) & (rew[down_rise] > MARGIN)]
        out.append(("Re-warming first raises both the upstream and the downstream loss",
                    2 * len(both) >= len(rew),
                    f"{len(both)} of {len(rew)} re-warmed runs rise by more than {MARGIN} on both sets before "
                    f"falling (the rule: at least half)"
                    + (f" ({', '.join(both.run)}; largest downstream rise {both[down_rise].max():.4f} at step "
                       f"{int(both.loc[both[down_rise].idxmax(), f'{downstream}_rise_step'])})" if len(both) else "")))
    final = f"{downstream}_final"
    for role, statement in (("constant", "It ends lower downstream than the constant-LR baseline"),
                            ("scratch", "The pre-trained start beats training from scratch on the same tokens")):
        ref = table[table.role == role]
        if len(rew) and len(ref) and final in table:  # the typical re-warmed run: the median
            b, median = float(ref[final].iloc[0]), float(rew[final].median())
            better = rew[rew[final] < b]
            holds = True if median < b - MARGIN else False if median > b + MARGIN else None
            out.append((statement, holds,
                        f"the median re-warmed run ends at {median:.4f} against the {role} run's {b:.4f} (the rule: "
                        f"lower by more than {MARGIN}); {len(better)} of {len(rew)} end below it (best "
                        f"{rew[final].min():.4f}, worst {rew[final].max():.4f})"))
    if "tag_lr" in rew and "forgetting" in rew:
        others = [c for c in rew.columns if c.startswith("tag_") and c != "tag_lr"]
        checked, more, pairs = 0, 0, []
        for _, g in (rew.groupby(others[0] if len(others) == 1 else others) if others else [((), rew)]):
            g = g.assign(lr=g["tag_lr"].map(_as_number)).dropna(subset=["lr", "forgetting"]).sort_values("lr")
            if len(g) < 2:
                continue
            lo, hi = g.iloc[0], g.iloc[-1]  # the smallest and the largest maximum LR of the group
            checked += 1
            more += bool(hi["forgetting"] > lo["forgetting"] + MARGIN)
            pairs.append(f"{hi['forgetting']:.4f} at {hi['tag_lr']} vs {lo['forgetting']:.4f} at {lo['tag_lr']}")
        out.append(("A higher maximum learning rate forgets more upstream", (more == checked) if checked else None,
                    f"the largest maximum LR forgets more than the smallest, by more than {MARGIN}, in {more} of "
                    f"{checked} groups of runs that differ only in it (the rule: in every group; "
                    f"{'; '.join(pairs)})"))
    return out


def findings(table, upstream, downstream):
    """The paper's four findings, each tested on the re-warmed runs, and again without the ones
    `stability` marks: [(statement, holds, evidence, without)], `without` being (holds,
    evidence) on the other runs, or None when no run is marked."""
    table = stability(table, downstream) if "stability" not in table else table
    rew = table[table.role == "rewarm"]
    if f"{downstream}_final" in rew:  # the runs that have logged
        rew = rew.dropna(subset=[f"{downstream}_final"])
    kept = rew[rew.stability == ""]
    every = _tested(rew, table, upstream, downstream)
    if len(kept) == len(rew):
        return [(st, h, ev, None) for st, h, ev in every]
    without = {st: (h, ev) for st, h, ev in _tested(kept, table, upstream, downstream)}
    return [(st, h, ev, without.get(st, (None, "too few runs left"))) for st, h, ev in every]


def markdown(table, columns=None):
    """A Markdown table (no extra dependency): losses to 4 decimals, steps and tokens as integers,
    NaN as —."""
    columns = columns or list(table.columns)

    def fmt(column, v):
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return "—"
            if column.endswith("_step") or column.startswith("tokens"):
                return f"{int(v):,}"
            return f"{v:.4f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(fmt(c, row.get(c, np.nan)) for c in columns) + " |")
    return "\n".join(lines) + "\n"
