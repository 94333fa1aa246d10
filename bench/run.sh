#!/usr/bin/env bash
# Runs rewarm bench on the demo and on Pythia shapes at T = 2048. Usage, from the repository
# root after scripts/setup.sh:  bench/run.sh [path/to/rewarm]   (default build/src/rewarm)
set -euo pipefail
cd "$(dirname "$0")/.."
rewarm=${1:-build/src/rewarm}
mkdir -p data
[[ -f data/bench_tokens.h5 ]] || $rewarm synth --out data/bench_tokens.h5 --vocab 256 --tokens 300000 >/dev/null
[[ -f data/demo_train.h5 ]] || $rewarm synth --out data/demo_train.h5 --vocab 8 --decay 0.5 --tokens 2000000 --stream-seed 2 >/dev/null
[[ -f data/demo_val.h5 ]] || $rewarm synth --out data/demo_val.h5 --vocab 8 --decay 0.5 --tokens 100000 --stream-seed 3 >/dev/null
echo "== $(date -u +%F) $(uname -m) $(nproc) cores; $rewarm"
for cfg in inputs/demo.toml bench/pythia-14m-2k.toml bench/pythia-70m-2k.toml; do
  steps=10
  [[ $cfg == inputs/demo.toml ]] || steps=3
  echo "-- $cfg (--steps $steps)"
  $rewarm bench "$cfg" --steps "$steps"
done
