"""rewarm's postprocessing: figures, tables and findings from metrics.h5 files.

  /usr/bin/python3 -m postprocess report --study runs/tiny/study.json [--out runs/tiny/report]
      every figure (PNG and PDF), summary.csv and summary.md, findings.md; the manifest comes
      from `rewarm sweep STUDY --manifest FILE` (the study's submit script and demo write it)
  /usr/bin/python3 -m postprocess report runs/a/metrics.h5 runs/b/metrics.h5 --upstream U --downstream D
      the same for runs without a study (no roles or tags: no grouped curves, no baselines)
  /usr/bin/python3 -m postprocess table runs/*/metrics.h5 [--csv all.csv]
      every logged series of the runs as one long table

Readable while runs are still going; a run that has not logged yet is listed as such."""
import argparse
import os
import sys

from . import figures, runs, summary


def report(args):
    if args.study:
        study, rs = runs.load_study(args.study)
        name, up, down = study["study"], study.get("upstream", ""), study.get("downstream", "")
        out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.study)), "report")
    else:
        if not args.files:
            sys.exit("postprocess report: give --study MANIFEST or metrics.h5 files")
        rs, name = runs.load_files(args.files), ""
        up, down = "", ""
        out = args.out or "report"
    up, down = args.upstream or up, args.downstream or down
    os.makedirs(out, exist_ok=True)
    table = summary.stability(summary.summary(rs, up, down), down)
    table.to_csv(os.path.join(out, "summary.csv"), index=False)
    columns = [c for c in ["run", "role", *sorted(c for c in table if c.startswith("tag_")), "steps",
                           f"{up}_final", f"{up}_rise", f"{up}_rise_step", f"{down}_final", f"{down}_best",
                           f"{down}_rise", f"{down}_rise_step", "forgetting", "gain", "tokens_to_beat_constant",
                           "tokens_to_beat_scratch", *sorted(c for c in table if "_acc" in c and c.endswith("_final")),
                           "stability"] if c in table]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(f"# {name or 'runs'}: summary\n\n" + summary.markdown(table, columns))
    found = summary.findings(table, up, down) if up and down else []
    marked = table[table.stability != ""] if "stability" in table else table.iloc[:0]
    verdict = lambda h: "cannot be told from these runs" if h is None else "holds" if h else "does not hold here"
    with open(os.path.join(out, "findings.md"), "w") as f:
        f.write(f"# {name or 'runs'}: the paper's findings on these runs\n\n")
        for _, m in marked.iterrows():
            f.write(f"- Run **{m.run}** is {m.stability}: {m.stability_why}.\n")
        for statement, holds, evidence, without in found:
            f.write(f"- **{statement}**: {verdict(holds)}. {evidence}.")
            if without:
                f.write(f" Without the {' and '.join(marked.stability.unique())} run(s) ({', '.join(marked.run)}): "
                        f"{verdict(without[0])}. {without[1]}.")
            f.write("\n")
        f.write(f"\nRules: a loss rise or a difference between runs counts when it exceeds {summary.MARGIN} nats; "
                f"a re-warmed run is diverged when its final downstream loss is not below its initial one, unstable "
                f"when it ends more than {summary.UNSTABLE_MARGIN} nats above the median re-warmed run.\n")
    paths = figures.all_figures(rs, table, up, down, out, name)
    missing = [r.name for r in rs if not r.complete]
    print(f"{len(rs)} runs; figures, summary.csv, summary.md and findings.md in {out}")
    if missing:
        print(f"not complete ({len(missing)}): " + ", ".join(
            f"{r.name} (step {r.steps_done} of {r.total_steps or '?'})" for r in rs if not r.complete))
    short = lambda h: "CANNOT TELL" if h is None else "HOLDS" if h else "NOT HERE"
    for _, m in marked.iterrows():
        print(f"  {m.stability.upper()}  {m.run}: {m.stability_why}")
    for statement, holds, evidence, without in found:
        print(f"  {short(holds)}  {statement}: {evidence}")
        if without and without[0] != holds:
            print(f"      without {', '.join(marked.run)}: {short(without[0])} ({without[1]})")
    print(f"  {len(paths)} figure files")
    return 0


def table(args):
    t = runs.long_table(runs.load_files(args.files))
    if args.csv:
        t.to_csv(args.csv, index=False)
    else:
        print(t.to_string(index=False))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m postprocess", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="figures, summary table and findings")
    r.add_argument("files", nargs="*", help="metrics.h5 files (instead of --study)")
    r.add_argument("--study", help="a study manifest (rewarm sweep STUDY --manifest FILE)")
    r.add_argument("--out", help="output folder (default: report/ beside the manifest)")
    r.add_argument("--upstream", help="the eval set forgetting is measured on (default: the study's)")
    r.add_argument("--downstream", help="the eval set gain is measured on (default: the study's)")
    t = sub.add_parser("table", help="every logged series as one table")
    t.add_argument("files", nargs="+")
    t.add_argument("--csv", help="write the table here instead of printing it")
    args = ap.parse_args(argv)
    return report(args) if args.command == "report" else table(args)


if __name__ == "__main__":
    sys.exit(main())
