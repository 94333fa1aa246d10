#!/usr/bin/env bash
# Two or more rewarm binaries benchmarked in turn, shape by shape, for R rounds, so that a drift
# of the machine shows in every binary alike; every figure is against the GEMM peak measured in the
# same run. From the repository root:
#
#   bench/alternate.sh [--rounds R] [--steps N] [--env 'VAR=VALUE ...'] BINARY... -- CONFIG...
#
# Each run prints one line: config, binary, tokens/s, MFU, GEMM peak, the kernels' share of a
# step and its largest kernels. --env sets variables for one binary: give it before that binary.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=2 steps=3 bins=() envs=() configs=() env_next=""
while (($#)) && [[ $1 != -- ]]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --env) env_next=$2; shift 2 ;;
    *) bins+=("$1"); envs+=("$env_next"); env_next=""; shift ;;
  esac
done
shift
configs=("$@")
mkdir -p data
[[ -f data/bench_tokens.h5 ]] || ${bins[0]} synth --out data/bench_tokens.h5 --vocab 256 --tokens 300000 >/dev/null
[[ -f data/demo_train.h5 ]] || ${bins[0]} synth --out data/demo_train.h5 --vocab 8 --decay 0.5 --tokens 2000000 --stream-seed 2 >/dev/null
[[ -f data/demo_val.h5 ]] || ${bins[0]} synth --out data/demo_val.h5 --vocab 8 --decay 0.5 --tokens 100000 --stream-seed 3 >/dev/null
echo "== $(date -u '+%F %T') $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
for cfg in "${configs[@]}"; do
  for ((r = 1; r <= rounds; ++r)); do
    for i in "${!bins[@]}"; do
      out=$(env ${envs[$i]} "${bins[$i]}" bench "$cfg" --steps "$steps" 2>&1) || { echo "$cfg ${bins[$i]}: FAILED"; echo "$out" | tail -3; continue; }
      tps=$(grep -oP '^throughput +\K[0-9]+' <<<"$out")
      mfu=$(grep -oP '^MFU +\K[0-9.]+%' <<<"$out")
      peak=$(grep -oP '^gemm peak +\K[0-9.]+' <<<"$out")
      kern=$(grep -oP '^kernels +\K.*' <<<"$out" || echo "-")
      printf '%s | %s %s | %s tok/s | MFU %s | peak %s GFLOP/s | kernels %s\n' "$(basename "$cfg" .toml)" \
        "${envs[$i]}" "${bins[$i]}" "$tps" "$mfu" "$peak" "$kern"
    done
  done
done
