#!/usr/bin/env bash
# The tiny study's corpora (inputs/studies/tiny.toml), stand-ins for the Pile and SlimPajama:
# documents from three domains of one synthetic world (rewarm synth --weights), mixed
# differently. Domain 0 is half of both corpora; domain 1 is 40% of the upstream corpus and 10%
# of the downstream one, domain 2 the reverse. Each domain speaks an order-2 language over 8
# symbols, 2 of them its own tokens (so a window tells its domain), and 65% of the contexts of
# the common tokens mean the same in every domain. docs/studies.md says why.
#   scripts/tiny_corpora.sh DIR [TRAIN_TOKENS]   -> DIR/tiny_{up,down}_{train,val}.h5 (kept when present)
set -euo pipefail
dir=${1:?usage: scripts/tiny_corpora.sh DIR [TRAIN_TOKENS]}
train_tokens=${2:-2000000}
rewarm=${REWARM:-$(dirname "$0")/../build/src/rewarm}
mkdir -p "$dir"
world=(--vocab 8 --private 2 --decay 0.5 --share 0.65 --shared-seed 7 --seed 1 --doc-length 256)
corpus() {  # name weights stream-seed tokens
  [[ -f $dir/tiny_$1.h5 ]] || $rewarm synth --out "$dir/tiny_$1.h5" "${world[@]}" --weights "$2" --stream-seed "$3" --tokens "$4"
}
corpus up_train 0.5,0.4,0.1 11 "$train_tokens"
corpus up_val 0.5,0.4,0.1 12 100000
corpus down_train 0.5,0.1,0.4 21 "$train_tokens"
corpus down_val 0.5,0.1,0.4 22 100000
