#!/usr/bin/env bash
# The demo is the study: the re-warming study of Gupta et al. 2023 in miniature, end to end on a
# laptop (about 6 minutes on two cores, the packages installed). It installs and builds what is missing, makes two
# synthetic corpora with a known entropy rate that share 80% of their structure (stand-ins for
# the Pile and SlimPajama), pre-trains a 2-layer GPT-NeoX on the first, continues on the second
# over a grid of maximum LRs and warmup lengths beside the constant-LR baseline, training from
# scratch and continuing upstream, then draws the figures, writes the tables, and says which
# of the paper's findings hold on these runs, computed from their logs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --target rewarm  # the demo needs the binary alone; scripts/test.sh builds the tests
rewarm=build/src/rewarm
mkdir -p data
common=(--vocab 8 --decay 0.5 --share 0.8 --shared-seed 7)
make_corpus() {  # name seed stream-seed tokens
  [[ -f data/tiny_$1.h5 ]] || $rewarm synth --out "data/tiny_$1.h5" "${common[@]}" --seed "$2" --stream-seed "$3" --tokens "$4"
}
make_corpus up_train 1 11 2000000
make_corpus up_val 1 12 100000
make_corpus down_train 2 21 2000000
make_corpus down_val 2 22 100000
rm -rf runs/tiny  # a fresh study each time (existing run dirs would be resumed)
$rewarm sweep inputs/studies/tiny.toml --list | head -1
scripts/run_study.sh inputs/studies/tiny.toml
echo
echo "entropy floor: $($rewarm info data/tiny_down_val.h5 | sed -n 's/.*entropy_rate: //p') (both corpora)"
echo "figures and tables: runs/tiny/report/ (curves_by_*.png, tradeoff.png, summary.md, findings.md)"
