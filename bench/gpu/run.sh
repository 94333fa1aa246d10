#!/usr/bin/env bash
# The one command to run on a lent GPU machine, from the repository root, with the bundle that
# scripts/gpu_bundle.sh made carried along (device tool: carry [".bundle/rewarm-cuda.tar.xz"]):
#
#   bench/gpu/run.sh [STAGE...]      stages: units train bench variants memcheck (default: all)
#
# Stages, in this order (the most telling first, as the time may run out):
#   units     the unit tests and the collectives' tests on the GPU
#   train     20 training steps on the GPU in fp32 (stopped at step 10 and resumed from its
#             checkpoint), in bf16 with the GEMM attention and in bf16 with cuDNN's fused attention,
#             compared with the host's runs in the bundle (fp32 ≤ 1e-5 relative, bf16 against the
#             host's exact emulation ≤ 1e-2; bench/gpu/compare.py), and the fused run with the GPU's
#             GEMM-attention run (≤ 1e-2)
#   bench     rewarm bench of Pythia-160M and Pythia-410M at T = 2048 in bf16 (the attention "auto"
#             picks, fused on an H100/H200), bf16 with the GEMM attention, tf32 and fp32, micro_batch
#             as large as fits, MFU against the GEMM peak of the same precision measured in the same
#             run; after each, the PyTorch baseline at its shape, measured once per shape
#             (bench/gpu/torch_baseline.py: transformers' GPTNeoXForCausalLM, bf16 autocast, SDPA,
#             fused AdamW) and rewarm's tokens/s over its
#   variants  the bf16 run with selective and with full recomputation and with ZeRO-3 (one rank),
#             against the bf16 run (the same kernels on the same inputs)
#   memcheck  the GEMM, attention and layer tests under compute-sanitizer's memcheck (but the [slow]
#             one: its finite differences are millions of launches)
# Everything goes under $OUT: run.log, results.json (rewritten after every step), bench-*.json,
# torch-*.json, train-*.log. cuDNN (and NCCL) are PyTorch's there (its nvidia-cudnn-cu13 package):
# never in the bundle.
#
# Time: a lent GPU has 15 minutes in all, the machine's start included. REWARM_CHECK_BUDGET
# (seconds, default 360) bounds the script: each step's timeout is cut to what is left of it, a
# step with too little left is skipped, and the last lines name the skipped steps and the command
# that runs their stages ("rerun: bench/gpu/run.sh bench variants") after the failed checks.
# Give the device call a timeout_s of the budget plus a minute.
#
# A dry run on a CPU (tests/python/test_gpu_check.py) sets REWARM_BUNDLE to the archive that
# `scripts/gpu_bundle.sh --cpu` makes, and REWARM_CHECK_MODELS, REWARM_CHECK_PRECISIONS and
# REWARM_CHECK_SET (extra --set for the benchmarks, e.g. "data.seq_len=64") to something small,
# and REWARM_CHECK_FUSED=optional: a fused attention that "cannot run here" is then reported, not
# a failure (on a GPU it is required).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
all_stages=(units train bench variants memcheck)
stages=("${@:-${all_stages[@]}}")
for s in "${stages[@]}"; do
  [[ " ${all_stages[*]} " == *" $s "* ]] || { echo "bench/gpu/run.sh: no stage '$s' (stages: ${all_stages[*]})" >&2; exit 2; }
done
want() { [[ " ${stages[*]} " == *" $1 "* ]]; }
OUT=${OUT:-/tmp/rewarm-gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
step() { echo; echo "== $(date -u +%T) +${SECONDS}s $*"; }
status=0 failed=() skipped=() rerun=()  # the checks that failed, the steps skipped and their stages
fail() { status=1; failed+=("$1"); }
skip() {  # STAGE STEP WHY: STEP named in the last lines, its STAGE in the rerun command
  skipped+=("$2")
  [[ " ${rerun[*]} " == *" $1 "* ]] || rerun+=("$1")
  echo "-- $3"
}
budget=${REWARM_CHECK_BUDGET:-360}
# timed STAGE N NAME CMD...: CMD under a timeout of N seconds, or of what the budget leaves (less a
# reserve for the results) if that is less. Returns 125, the step named as skipped, when under
# 20 s are left, or when the budget's timeout cut it short.
timed() {
  local stage=$1 n=$2 name=$3 t=$((budget - SECONDS - 10)); shift 3
  ((t > n)) && t=$n
  if ((t < 20)); then
    skip "$stage" "$name" "$name: skipped, ${t} s left of the budget"
    return 125
  fi
  timeout "$t" "$@"
  local rc=$?
  if ((rc == 124 && t < n)); then
    skip "$stage" "$name (cut at $t s)" "$name: cut at $t s by the budget"
    return 125
  fi
  return $rc
}

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
compare=()  # one JSON line per comparison

# results.json from what is under $OUT so far: after every step, so that a run stopped from
# outside still leaves its numbers; the table is printed once, at the end
write_results() {
  python3 - "$OUT" "$1" "${compare[@]}" <<'PY'
import glob, json, os, sys
out, table = sys.argv[1], sys.argv[2] == "table"
res = {"compare": [json.loads(s) for s in sys.argv[3:]], "bench": {}, "torch": {}}
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
    if table:
        print(line)
json.dump(res, open(os.path.join(out, "results.json.tmp"), "w"), indent=2)
os.replace(os.path.join(out, "results.json.tmp"), os.path.join(out, "results.json"))
PY
}

step "device"
nvidia-smi || echo "no nvidia-smi: not an NVIDIA machine (a dry run?)"
$rewarm --version
echo "stages: ${stages[*]}; budget ${budget} s"

if want units; then
  step "unit tests on the GPU"
  timed units 180 "unit tests" "$B/bin/rewarm_tests" --reporter compact > "$unpacked/units.txt" 2>&1
  rc=$?; tail -25 "$unpacked/units.txt"; ((rc == 0 || rc == 125)) || fail "unit tests"
  timed units 60 "comm tests" "$B/bin/rewarm_comm_tests" > "$unpacked/comm.txt" 2>&1
  rc=$?; tail -3 "$unpacked/comm.txt"; ((rc == 0 || rc == 125)) || fail "comm tests"
fi

# train STAGE NAME PRECISION ATTENTION [OPTION...]: the check's run on the GPU into gpu-NAME
# (logged in train-NAME.log); 0 if it ran, 1 if it failed (named), 2 if skipped or optional here
train() {
  local stage=$1 name=$2 p=$3 attention=$4 rc; shift 4
  timed "$stage" 120 "train $name" $rewarm train "$B/ref/check.toml" --set run_dir="$unpacked/gpu-$name" \
    --set precision.gemm="\"$p\"" --set precision.attention="\"$attention\"" --set data.train.0.path="$B/ref/train.h5" \
    --set data.eval.0.path="$B/ref/val.h5" --set data.tasks.0.path="$B/ref/task.h5" "$@" >> "$OUT/train-$name.log" 2>&1
  rc=$?
  ((rc == 0)) && return 0
  ((rc == 125)) && return 2
  if [[ $attention == fused && $fused_check == optional ]] && grep -q "cannot run here" "$OUT/train-$name.log"; then
    echo "-- $name: $(grep -o "cannot run here.*" "$OUT/train-$name.log" | head -1) (optional here)"
    return 2
  fi
  echo "train $name${*:+ $*} failed:"; tail -5 "$OUT/train-$name.log"; fail "train $name"
  return 1
}
compare_runs() {  # name gpu_run reference_run precision
  python3 bench/gpu/compare.py "$2" "$3" "$4" > "$unpacked/compare-$1.txt" || fail "compare $1"
  echo "-- $1"; head -4 "$unpacked/compare-$1.txt"
  compare+=("$(tail -1 "$unpacked/compare-$1.txt")")
}

if want train; then
  step "20 training steps: GPU against the host"
  # fp32 stops at step 10 and resumes: the checkpoint is read back into GPU memory through its host mirror
  train train fp32 fp32 gemm --stop-at 10 && train train fp32 fp32 gemm &&
    compare_runs fp32 "$unpacked/gpu-fp32" "$B/ref/host-fp32" fp32
  train train bf16 bf16 gemm && compare_runs bf16 "$unpacked/gpu-bf16" "$B/ref/host-bf16" bf16
  if train train bf16-fused bf16 fused; then
    grep -h "rewarm: attention:" "$OUT/train-bf16-fused.log" | head -1
    compare_runs bf16-fused "$unpacked/gpu-bf16-fused" "$B/ref/host-bf16" bf16  # the host's: the GEMM attention
    [[ -d $unpacked/gpu-bf16 ]] && compare_runs fused-vs-gemm "$unpacked/gpu-bf16-fused" "$unpacked/gpu-bf16" bf16
  fi
  write_results quiet
fi

if want bench; then
  step "benchmarks at T = 2048, each followed by the PyTorch baseline at its shape"
  bench_set=()
  for kv in ${REWARM_CHECK_SET:-}; do bench_set+=(--set "$kv"); done
  precisions=${REWARM_CHECK_PRECISIONS:-bf16 tf32 fp32}
  [[ " $precisions " == *" bf16 "* ]] && precisions=${precisions/bf16/bf16 bf16-gemm}
  for p in $precisions; do
    for model in ${REWARM_CHECK_MODELS:-pythia-160m pythia-410m}; do
      name=$model-$p settled=0  # 1 once a micro_batch ran, or failed for another reason than its size
      attention=$([[ $p == *-gemm ]] && echo gemm || echo auto)
      for mb in 16 8 4 2 1; do  # the largest micro_batch that fits
        timed bench 180 "bench $name" $rewarm bench bench/gpu/bench.toml --set model.preset=\"$model\" \
          --set precision.gemm=\"${p%-gemm}\" --set precision.attention=\"$attention\" --set data.micro_batch=$mb \
          --set data.global_batch=$mb --set data.train.0.path="$B/ref/bench.h5" \
          "${bench_set[@]}" --steps 3 --json "$OUT/bench-$name.json" > "$unpacked/bench.txt" 2>&1
        rc=$?
        ((rc == 125)) && { settled=1; break; }
        if ((rc == 0)); then
          echo "-- $name micro_batch $mb"; grep -E "attention|throughput|MFU|gemm peak|phases|device ops|memory" "$unpacked/bench.txt"
          settled=2
          break
        fi
        # too big: the memory estimate says "needs about", Kokkos says "Insufficient memory"/"out of memory"
        grep -q "needs about\|out of memory\|Insufficient\|allocation" "$unpacked/bench.txt" || { cat "$unpacked/bench.txt"; fail "bench $name"; settled=1; break; }
      done
      ((settled)) || { echo "-- $name: no micro_batch fits"; tail -3 "$unpacked/bench.txt"; fail "bench $name (no micro_batch fits)"; }
      if ((settled == 2)); then
        # the baseline a user would pick instead, at this benchmark's shape (model, seq_len, micro_batch)
        shape=$(python3 -c "import json, sys; j = json.load(open(sys.argv[1])); print(j['model']['hidden_size'], j['model']['num_hidden_layers'], j['seq_len'], j['micro_batch'])" "$OUT/bench-$name.json")
        if [[ -f $unpacked/torch-$shape.json ]]; then
          cp "$unpacked/torch-$shape.json" "$OUT/torch-$name.json"
        else
          timed bench 150 "torch baseline $name" python3 bench/gpu/torch_baseline.py "$OUT/bench-$name.json" \
            --out "$OUT/torch-$name.json" > "$unpacked/torch.txt" 2>&1
          rc=$?
          if ((rc == 0)); then
            cp "$OUT/torch-$name.json" "$unpacked/torch-$shape.json"
            echo "-- PyTorch baseline at $name's shape: $(tail -1 "$unpacked/torch.txt")"
          elif ((rc != 125)); then
            echo "-- PyTorch baseline at $name's shape failed:"; tail -5 "$unpacked/torch.txt"; fail "torch baseline $name"
          fi
        fi
      fi
      write_results quiet
    done
  done
fi

# recomputation and ZeRO-3 (parameters gathered unit by unit into two slots) on the GPU: the same
# kernels on the same inputs, so the bf16 run again (bitwise on the host: tests/unit/test_model.cpp,
# tests/python/test_mpi.py); compared at fp32's tolerance, the difference printed
if want variants; then
  step "bf16 with recomputation and with ZeRO-3 against the bf16 run"
  [[ -d $unpacked/gpu-bf16 ]] || train variants bf16 bf16 gemm
  for variant in recompute-selective recompute-full zero3; do
    case $variant in
      recompute-*) option=(--set memory.recompute="\"${variant#recompute-}\"") ;;
      zero3) option=(--set parallel.zero=3) ;;
    esac
    train variants "bf16-$variant" bf16 gemm "${option[@]}" && [[ -d $unpacked/gpu-bf16 ]] &&
      compare_runs "$variant" "$unpacked/gpu-bf16-$variant" "$unpacked/gpu-bf16" fp32
  done
  write_results quiet
fi

if want memcheck; then
  step "memcheck: GEMMs, attention (GEMM and fused), layers"
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  if [[ -n $sanitizer ]] && command -v nvidia-smi >/dev/null; then  # out-of-bounds and misaligned device accesses
    timed memcheck 150 memcheck "$sanitizer" --tool memcheck --error-exitcode 3 --print-limit 10 "$B/bin/rewarm_tests" \
      --reporter compact "[gemm] ~[slow],[attention] ~[slow],[layers] ~[slow]" > "$unpacked/memcheck.txt" 2>&1
    rc=$?; tail -15 "$unpacked/memcheck.txt"; ((rc == 0 || rc == 125)) || fail memcheck
  else
    echo "no compute-sanitizer or no GPU: memcheck skipped"
  fi
fi

step "results"
write_results table
if ((status)); then printf 'failed: %s\n' "${failed[@]}"; fi
if ((${#skipped[@]})); then
  printf 'skipped: %s\n' "${skipped[@]}"
  echo "rerun: bench/gpu/run.sh ${rerun[*]}"
fi
echo "status $status"
exit $status
