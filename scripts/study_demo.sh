#!/usr/bin/env bash
# A continual pre-training study in miniature (a few minutes on two cores): two synthetic
# corpora that share half their structure and have the same known entropy rate stand in for the
# Pile and SlimPajama. Pre-train on the upstream one, then re-warm on the downstream one with
# several warmup lengths and peak learning rates, and tabulate forgetting against gain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
rewarm=build/src/rewarm
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}  # tiny GEMMs: a second BLAS thread only spins
mkdir -p data
common=(--vocab 8 --decay 0.5 --share 0.5 --shared-seed 7)
$rewarm synth --out data/study_up_train.h5 "${common[@]}" --seed 1 --stream-seed 11 --tokens 2000000
$rewarm synth --out data/study_up_val.h5 "${common[@]}" --seed 1 --stream-seed 12 --tokens 100000
$rewarm synth --out data/study_down_train.h5 "${common[@]}" --seed 2 --stream-seed 21 --tokens 2000000
$rewarm synth --out data/study_down_val.h5 "${common[@]}" --seed 2 --stream-seed 22 --tokens 100000
rm -rf runs/study
$rewarm train inputs/study/pretrain.toml
for lr in 3e-3 1e-2; do
  for warmup in 0 40 160; do
    $rewarm train inputs/study/rewarm.toml --set optimizer.lr=$lr --set schedule.warmup_steps=$warmup \
      --set run_dir=runs/study/lr$lr-wu$warmup | grep "^eval.*step    400"
  done
done
floor=$($rewarm info data/study_up_val.h5 | sed -n 's/.*entropy_rate: \([0-9.]*\).*/\1/p')
/usr/bin/python3 - "$floor" <<'PY'
import glob, sys
import h5py
floor = float(sys.argv[1])
print(f"\nentropy floor {floor:.4f} nats/token on both corpora")
print(f"{'run':<22}{'upstream start':>15}{'upstream end':>13}{'forgetting':>11}{'downstream start':>17}{'downstream end':>15}{'gain':>8}")
for path in sorted(glob.glob("runs/study/lr*/metrics.h5")):
    with h5py.File(path, "r") as f:
        up, down = f["eval/upstream/loss"][:], f["eval/downstream/loss"][:]
    name = path.split("/")[2]
    print(f"{name:<22}{up[0]:>15.4f}{up[-1]:>13.4f}{up[-1] - up[0]:>11.4f}{down[0]:>17.4f}{down[-1]:>15.4f}{down[0] - down[-1]:>8.4f}")
PY
