#!/usr/bin/env bash
# The one command to run on a lent GPU machine, from the repository root, with the bundle that
# scripts/gpu_bundle.sh made carried along (device tool: carry [".bundle/rewarm-cuda.tar.xz"]):
#
#   bench/gpu/run.sh            (in well under 8 minutes)
#
# 1. nvidia-smi; 2. the unit tests on the GPU; 3. 20 training steps on the GPU in fp32 (stopped at
# step 10 and resumed from its checkpoint) and in bf16,
# compared with the host's runs in the bundle (fp32 ≤ 1e-5 relative, bf16 against the host's
# exact emulation ≤ 1e-2; bench/gpu/compare.py); 4. rewarm bench of Pythia-160M and Pythia-410M at
# T = 2048 in fp32, tf32 and bf16, micro_batch as large as fits, with MFU against the GEMM peak of
# the same precision measured in the same run. Everything goes under $OUT: run.log, results.json,
# bench-*.json, train-*.log.
#
# A dry run on a CPU (tests/python/test_gpu_check.py) sets REWARM_BUNDLE to the archive that
# `scripts/gpu_bundle.sh --cpu` makes, and REWARM_CHECK_MODELS, REWARM_CHECK_PRECISIONS and
# REWARM_CHECK_SET (extra --set for the benchmarks, e.g. "data.seq_len=64") to something small.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
OUT=${OUT:-/tmp/rewarm-gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
step() { echo; echo "== $(date -u +%T) $*"; }
status=0

step "unpack"
unpacked=$(mktemp -d)  # the bundle and this run's scratch, removed at the end
trap 'rm -rf "$unpacked"' EXIT
tar -xf "${REWARM_BUNDLE:-.bundle/rewarm-cuda.tar.xz}" -C "$unpacked" || exit 1
B=$(echo "$unpacked"/rewarm-*)
cuda_lib=$(dirname "$(ldconfig -p | awk '/libcublas\.so\./ {print $4; exit}')")
export LD_LIBRARY_PATH="$B/lib:${cuda_lib:-/usr/local/cuda/lib64}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export REWARM_SOURCE_DIR=$root OMP_PROC_BIND=false
rewarm=$B/bin/rewarm

step "device"
nvidia-smi || echo "no nvidia-smi: not an NVIDIA machine (a dry run?)"
$rewarm --version

step "unit tests on the GPU"
timeout 240 "$B/bin/rewarm_tests" --reporter compact 2>&1 | tail -25 || status=1
timeout 60 "$B/bin/rewarm_comm_tests" 2>&1 | tail -3 || status=1

step "20 training steps: GPU against the host"
compare=()
for p in fp32 bf16; do
  # fp32 stops at step 10 and resumes: the checkpoint is read back into GPU memory through its host mirror
  stops=(""); [[ $p == fp32 ]] && stops=("--stop-at 10" "")
  for stop in "${stops[@]}"; do
    timeout 120 $rewarm train "$B/ref/check.toml" --set run_dir="$unpacked/gpu-$p" --set precision.gemm="\"$p\"" \
      --set data.train.0.path="$B/ref/train.h5" --set data.eval.0.path="$B/ref/val.h5" $stop >> "$OUT/train-$p.log" 2>&1 ||
      { echo "train $p $stop failed:"; tail -5 "$OUT/train-$p.log"; status=1; continue 2; }
  done
  python3 bench/gpu/compare.py "$unpacked/gpu-$p" "$B/ref/host-$p" $p > "$unpacked/compare-$p.txt" || status=1
  cat "$unpacked/compare-$p.txt" | head -4
  compare+=("$(tail -1 "$unpacked/compare-$p.txt")")
done

step "benchmarks at T = 2048"
bench_set=()
for kv in ${REWARM_CHECK_SET:-}; do bench_set+=(--set "$kv"); done
for model in ${REWARM_CHECK_MODELS:-pythia-160m pythia-410m}; do
  for p in ${REWARM_CHECK_PRECISIONS:-fp32 tf32 bf16}; do
    settled=0  # 1 once a micro_batch ran, or failed for another reason than its size
    for mb in 16 8 4 2 1; do  # the largest micro_batch that fits
      if timeout 180 $rewarm bench bench/gpu/bench.toml --set model.preset=\"$model\" --set precision.gemm=\"$p\" \
           --set data.micro_batch=$mb --set data.global_batch=$mb --set data.train.0.path="$B/ref/bench.h5" \
           "${bench_set[@]}" --steps 3 --json "$OUT/bench-$model-$p.json" > "$unpacked/bench.txt" 2>&1; then
        echo "-- $model $p micro_batch $mb"; grep -E "throughput|MFU|gemm peak|phases|device ops|memory" "$unpacked/bench.txt"
        settled=1
        break
      fi
      # too big: the memory estimate says "needs about", Kokkos says "Insufficient memory"/"out of memory"
      grep -q "needs about\|out of memory\|Insufficient\|allocation" "$unpacked/bench.txt" || { cat "$unpacked/bench.txt"; status=1; settled=1; break; }
    done
    ((settled)) || { echo "-- $model $p: no micro_batch fits"; tail -3 "$unpacked/bench.txt"; status=1; }
  done
done

step "results"
python3 - "$OUT" "${compare[@]}" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
res = {"compare": [json.loads(s) for s in sys.argv[2:]], "bench": {}}
for f in sorted(glob.glob(os.path.join(out, "bench-*.json"))):
    j = json.load(open(f))
    res["bench"][os.path.basename(f)[6:-5]] = j
    print(f"{os.path.basename(f)[6:-5]:22s} {j['tokens_per_second']:10.0f} tok/s  MFU {100*j['mfu']:5.1f}%  "
          f"peak {j['peak_flops']/1e12:6.1f} TFLOP/s  mem {j['peak_memory_bytes']/2**30:5.1f} GiB  "
          f"ops/micro-batch {j['device_ops_per_micro_batch']:.0f}")
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=2)
PY
echo "status $status"
exit $status
