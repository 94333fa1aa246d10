#!/usr/bin/env bash
# The one command to run on a lent GPU machine, from the repository root, with the bundle that
# scripts/gpu_bundle.sh made carried along (device tool: carry [".bundle/rewarm-cuda.tar.xz"]):
#
#   bench/gpu/run.sh            (in well under 8 minutes)
#
# 1. nvidia-smi; 2. the unit tests on the GPU, then some of them under compute-sanitizer's
# memcheck; 3. 20 training steps on the GPU in fp32 (stopped at step 10 and resumed from its
# checkpoint), in bf16 with the GEMM attention and in bf16 with cuDNN's fused attention,
# compared with the host's runs in the bundle (fp32 ≤ 1e-5 relative, bf16 against the host's
# exact emulation ≤ 1e-2; bench/gpu/compare.py) and the fused run with the GPU's GEMM-attention
# run (≤ 1e-2), then bf16 with selective and full recomputation and with ZeRO-3
# (one rank) against the bf16 run; 4. rewarm bench of Pythia-160M and Pythia-410M at T = 2048 in fp32, tf32 and
# bf16 (bf16 twice: the attention "auto" picks, fused on an H100/H200, and the GEMM attention),
# micro_batch as large as fits, with MFU against the GEMM peak of the same precision measured in
# the same run; 5. the PyTorch baseline at each benchmark's shape (bench/gpu/torch_baseline.py:
# transformers' GPTNeoXForCausalLM, bf16 autocast, SDPA, fused AdamW), rewarm's tokens/s over its.
# Everything goes under $OUT: run.log, results.json, bench-*.json, torch-*.json, train-*.log.
# cuDNN (and NCCL) are PyTorch's there (its nvidia-cudnn-cu13 package): never in the bundle.
#
# A dry run on a CPU (tests/python/test_gpu_check.py) sets REWARM_BUNDLE to the archive that
# `scripts/gpu_bundle.sh --cpu` makes, and REWARM_CHECK_MODELS, REWARM_CHECK_PRECISIONS and
# REWARM_CHECK_SET (extra --set for the benchmarks, e.g. "data.seq_len=64") to something small,
# and REWARM_CHECK_FUSED=optional: a fused attention that "cannot run here" is then reported, not
# a failure (on a GPU it is required).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
OUT=${OUT:-/tmp/rewarm-gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
step() { echo; echo "== $(date -u +%T) $*"; }
status=0 failed=()  # the checks that failed, named in the last line
fail() { status=1; failed+=("$1"); }

step "unpack"
unpacked=$(mktemp -d)  # the bundle and this run's scratch, removed at the end
trap 'rm -rf "$unpacked"' EXIT
tar -xf "${REWARM_BUNDLE:-.bundle/rewarm-cuda.tar.xz}" -C "$unpacked" || exit 1
B=$(echo "$unpacked"/rewarm-*)
cuda_lib=$(dirname "$(ldconfig -p | awk '/libcublas\.so\./ {print $4; exit}')")
export LD_LIBRARY_PATH="$B/lib:${cuda_lib:-/usr/local/cuda/lib64}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
# cuDNN and NCCL from the Python environment's nvidia-* packages, where it has them
for pkg in cudnn nccl; do
  d=$(python3 -c "import nvidia.$pkg as m, os; print(os.path.join(list(m.__path__)[0], 'lib'))" 2>/dev/null) &&
    [[ -d $d ]] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d" && echo "$pkg: $d"
done
export REWARM_SOURCE_DIR=$root OMP_PROC_BIND=false
rewarm=$B/bin/rewarm
fused_check=${REWARM_CHECK_FUSED:-required}

step "device"
nvidia-smi || echo "no nvidia-smi: not an NVIDIA machine (a dry run?)"
$rewarm --version

step "unit tests on the GPU"
timeout 240 "$B/bin/rewarm_tests" --reporter compact 2>&1 | tail -25 || fail "unit tests"
timeout 60 "$B/bin/rewarm_comm_tests" 2>&1 | tail -3 || fail "comm tests"
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [[ -n $sanitizer ]] && command -v nvidia-smi >/dev/null; then  # out-of-bounds and misaligned device accesses
  step "memcheck: GEMMs, attention (GEMM and fused), layers"
  timeout 150 "$sanitizer" --tool memcheck --error-exitcode 3 --print-limit 10 "$B/bin/rewarm_tests" \
    --reporter compact "[gemm],[attention],[layers]" 2>&1 | tail -15 || { echo "memcheck: failed"; fail memcheck; }
else
  echo "no compute-sanitizer or no GPU: memcheck skipped"
fi

step "20 training steps: GPU against the host"
compare=()
compare_runs() {  # name gpu_run reference_run precision
  python3 bench/gpu/compare.py "$2" "$3" "$4" > "$unpacked/compare-$1.txt" || fail "compare $1"
  echo "-- $1"; head -4 "$unpacked/compare-$1.txt"
  compare+=("$(tail -1 "$unpacked/compare-$1.txt")")
}
for run in fp32 bf16 bf16-fused; do
  p=${run%-fused} attention=$([[ $run == *-fused ]] && echo fused || echo gemm)
  # fp32 stops at step 10 and resumes: the checkpoint is read back into GPU memory through its host mirror
  stops=(""); [[ $p == fp32 ]] && stops=("--stop-at 10" "")
  for stop in "${stops[@]}"; do
    timeout 120 $rewarm train "$B/ref/check.toml" --set run_dir="$unpacked/gpu-$run" --set precision.gemm="\"$p\"" \
      --set precision.attention="\"$attention\"" --set data.train.0.path="$B/ref/train.h5" \
      --set data.eval.0.path="$B/ref/val.h5" $stop >> "$OUT/train-$run.log" 2>&1 && continue
    if [[ $attention == fused && $fused_check == optional ]] && grep -q "cannot run here" "$OUT/train-$run.log"; then
      echo "-- $run: $(grep -o "cannot run here.*" "$OUT/train-$run.log" | head -1) (optional here)"
    else
      echo "train $run $stop failed:"; tail -5 "$OUT/train-$run.log"; fail "train $run"
    fi
    continue 2
  done
  grep -h "rewarm: attention:" "$OUT/train-$run.log" | head -1
  compare_runs "$run" "$unpacked/gpu-$run" "$B/ref/host-$p" "$p"  # the host's runs: the GEMM attention
  [[ $run == bf16-fused ]] && compare_runs "fused-vs-gemm" "$unpacked/gpu-$run" "$unpacked/gpu-bf16" bf16
done

# recomputation and ZeRO-3 (parameters gathered unit by unit into two slots) on the GPU: the same
# kernels on the same inputs, so the bf16 run again (bitwise on the host: tests/unit/test_model.cpp,
# tests/python/test_mpi.py); compared at fp32's tolerance, the difference printed
for variant in recompute-selective recompute-full zero3; do
  case $variant in
    recompute-*) option=(--set memory.recompute="\"${variant#recompute-}\"") ;;
    zero3) option=(--set parallel.zero=3) ;;
  esac
  if timeout 120 $rewarm train "$B/ref/check.toml" --set run_dir="$unpacked/gpu-bf16-$variant" --set precision.gemm='"bf16"' \
       --set precision.attention='"gemm"' "${option[@]}" --set data.train.0.path="$B/ref/train.h5" \
       --set data.eval.0.path="$B/ref/val.h5" >> "$OUT/train-bf16-$variant.log" 2>&1; then
    [[ -d $unpacked/gpu-bf16 ]] && compare_runs "$variant" "$unpacked/gpu-bf16-$variant" "$unpacked/gpu-bf16" fp32
  else
    echo "train bf16 $variant failed:"; tail -5 "$OUT/train-bf16-$variant.log"; fail "train bf16 $variant"
  fi
done

step "benchmarks at T = 2048"
bench_set=()
for kv in ${REWARM_CHECK_SET:-}; do bench_set+=(--set "$kv"); done
for model in ${REWARM_CHECK_MODELS:-pythia-160m pythia-410m}; do
  for p in ${REWARM_CHECK_PRECISIONS:-fp32 tf32 bf16} $([[ " ${REWARM_CHECK_PRECISIONS:-bf16} " == *" bf16 "* ]] && echo bf16-gemm); do
    settled=0  # 1 once a micro_batch ran, or failed for another reason than its size
    attention=$([[ $p == *-gemm ]] && echo gemm || echo auto)
    for mb in 16 8 4 2 1; do  # the largest micro_batch that fits
      if timeout 180 $rewarm bench bench/gpu/bench.toml --set model.preset=\"$model\" --set precision.gemm=\"${p%-gemm}\" \
           --set precision.attention=\"$attention\" --set data.micro_batch=$mb --set data.global_batch=$mb \
           --set data.train.0.path="$B/ref/bench.h5" \
           "${bench_set[@]}" --steps 3 --json "$OUT/bench-$model-$p.json" > "$unpacked/bench.txt" 2>&1; then
        echo "-- $model $p micro_batch $mb"; grep -E "attention|throughput|MFU|gemm peak|phases|device ops|memory" "$unpacked/bench.txt"
        settled=1
        break
      fi
      # too big: the memory estimate says "needs about", Kokkos says "Insufficient memory"/"out of memory"
      grep -q "needs about\|out of memory\|Insufficient\|allocation" "$unpacked/bench.txt" || { cat "$unpacked/bench.txt"; fail "bench $model $p"; settled=1; break; }
    done
    ((settled)) || { echo "-- $model $p: no micro_batch fits"; tail -3 "$unpacked/bench.txt"; fail "bench $model $p (no micro_batch fits)"; }
  done
done

# the baseline a user would pick instead, at each benchmark's shape (model, seq_len, micro_batch):
# Hugging Face's GPTNeoXForCausalLM with bf16 autocast, SDPA attention and fused AdamW
step "PyTorch baseline (transformers' GPTNeoXForCausalLM) at the same shapes"
for f in "$OUT"/bench-*.json; do
  [[ -f $f ]] || continue
  name=$(basename "$f" .json); name=${name#bench-}
  shape=$(python3 -c "import json, sys; j = json.load(open(sys.argv[1])); print(j['model']['hidden_size'], j['model']['num_hidden_layers'], j['seq_len'], j['micro_batch'])" "$f")
  if [[ -f $unpacked/torch-$shape.json ]]; then cp "$unpacked/torch-$shape.json" "$OUT/torch-$name.json"; continue; fi
  if timeout 150 python3 bench/gpu/torch_baseline.py "$f" --out "$OUT/torch-$name.json" > "$unpacked/torch.txt" 2>&1; then
    cp "$OUT/torch-$name.json" "$unpacked/torch-$shape.json"
    echo "-- $name's shape: $(tail -1 "$unpacked/torch.txt")"
  else
    echo "-- $name's shape: the baseline failed:"; tail -5 "$unpacked/torch.txt"; fail "torch baseline $name"
  fi
done

step "results"
python3 - "$OUT" "${compare[@]}" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
res = {"compare": [json.loads(s) for s in sys.argv[2:]], "bench": {}, "torch": {}}
for f in sorted(glob.glob(os.path.join(out, "bench-*.json"))):
    name = os.path.basename(f)[6:-5]
    j = json.load(open(f))
    res["bench"][name] = j
    line = (f"{name:22s} {j.get('attention', '?'):5s} {j['tokens_per_second']:10.0f} tok/s  MFU {100*j['mfu']:5.1f}%  "
            f"peak {j['peak_flops']/1e12:6.1f} TFLOP/s  mem {j['peak_memory_bytes']/2**30:5.1f} GiB  "
            f"ops/micro-batch {j['device_ops_per_micro_batch']:.0f}")
    t = os.path.join(out, f"torch-{name}.json")
    if os.path.exists(t):
        b = res["torch"][name] = json.load(open(t))
        if b.get("out_of_memory"):
            line += "  torch: out of memory"
        else:
            mem = f"{b['peak_memory_bytes']/2**30:.1f} GiB" if b.get("peak_memory_bytes") else "?"
            line += f"  torch {b['tokens_per_second']:8.0f} tok/s, {mem}: rewarm/torch {j['tokens_per_second']/b['tokens_per_second']:.2f}"
    print(line)
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=2)
PY
if ((status)); then printf 'failed: %s\n' "${failed[@]}"; fi
echo "status $status"
exit $status
