#!/usr/bin/env bash
# The demo is the study: the re-warming study of Gupta et al. 2023 in miniature, end to end on a
# laptop (about 7 minutes on two cores, the packages installed). It installs and builds what is
# missing, makes two synthetic corpora that mix the same three domains differently (stand-ins
# for the Pile and SlimPajama), pre-trains a 2-layer GPT-NeoX on the first, continues on the
# second over a grid of maximum LRs and warmup lengths beside the constant-LR baseline, training
# from scratch and continuing upstream, then draws the figures, writes the tables, and says
# which of the paper's findings hold on these runs, computed from their logs.
#   scripts/demo.sh [--seed N]   N (default 1) seeds every run's init and data order;
#                                seed 1 runs in runs/tiny, another in runs/tiny-seedN
set -euo pipefail
cd "$(dirname "$0")/.."
seed=1
while (($#)); do
  case $1 in
    --seed) seed=${2:?--seed N}; shift 2 ;;
    *) echo "demo: unknown option $1 (scripts/demo.sh [--seed N])" >&2; exit 2 ;;
  esac
done
[[ $seed =~ ^[0-9]+$ ]] || { echo "demo: --seed must be a non-negative integer, not $seed" >&2; exit 2; }
root=runs/tiny
((seed == 1)) || root=runs/tiny-seed$seed
scripts/setup.sh --target rewarm  # the demo needs the binary alone; scripts/test.sh builds the tests
rewarm=build/src/rewarm
scripts/tiny_corpora.sh data
rm -rf "$root"  # a fresh study each time (existing run dirs would be resumed)
study=(inputs/studies/tiny.toml --run-root "$root" --set "init.seed=$seed" --set "data.seed=$seed")
$rewarm sweep "${study[@]}" --list | sed -n 1p
scripts/run_study.sh "${study[@]}"
echo
echo "entropy floor: $($rewarm info data/tiny_down_val.h5 | sed -n 's/.*entropy_rate: //p') (both corpora, given each document's domain)"
echo "figures and tables: $root/report/ (curves_by_*.png, tradeoff.png, summary.md, findings.md)"
