#!/usr/bin/env bash
# The demo: set up and build, make a synthetic corpus with a known entropy rate, train a tiny
# GPT-NeoX on it (loss per step), and print the final eval loss next to the entropy floor.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
rewarm=build/src/rewarm
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}  # tiny GEMMs: a second BLAS thread only spins
mkdir -p data
$rewarm synth --out data/demo_train.h5 --vocab 8 --decay 0.5 --tokens 2000000 --stream-seed 2
$rewarm synth --out data/demo_val.h5 --vocab 8 --decay 0.5 --tokens 100000 --stream-seed 3
rm -rf runs/demo  # a fresh run each time (an existing run_dir would be resumed)
$rewarm train inputs/demo.toml
$rewarm info runs/demo/metrics.h5
$rewarm info data/demo_val.h5 | grep entropy_rate
