#!/usr/bin/env bash
# The GPU builds, where this machine has what they need, each said to be built or skipped and why
# (never silently): CUDA against a Kokkos 4 CUDA install (KOKKOS_CUDA_ROOT, default
# .deps/kokkos-cuda) with cuDNN's fused attention (cudnn-frontend: CUDNN_FRONTEND_ROOT, default
# .deps/cudnn-frontend) and NCCL in build-cuda/, HIP against a Kokkos 4 HIP install
# (KOKKOS_HIP_ROOT, default .deps/kokkos-hip) in build-hip/: rewarm alone, since no GPU here runs
# their tests (scripts/gpu_bundle.sh builds the CUDA tests for bench/gpu/run.sh). Neither Kokkos is a Debian package:
# scripts/unpack_deps.sh unpacks the project's prebuilt installs into .deps/ (CI does, before this
# script); README "Building on a cluster" says how to make them. No rocBLAS is packaged, so the
# HIP build is a compile check with Kokkos Kernels' own GEMM (REWARM_ALLOW_NATIVE_GEMM, default
# ON here; never for runs). A build that exists is then tested on this machine without a GPU by
# tests/python/test_gpu_build.py (the login node).
# Last, compile checks of single files as another build would compile them: the CUDA build
# without cuDNN and NCCL (REWARM_CUDNN=OFF, REWARM_NCCL=OFF) differs from build-cuda/ in two
# files only, which are compiled so; the rocBLAS paths (src/core/gemm.cpp) and the RCCL paths
# (src/parallel/device_collectives.cpp) against their headers (ROCBLAS_INCLUDE, RCCL_INCLUDE;
# default .deps/rocblas/include, .deps/rccl/include): neither library is packaged to link.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
build() {  # name kokkos_root compiler extra-cmake-args...
  local name=$1 root=$2 cxx=$3
  shift 3
  if [[ ! -f $root/lib/cmake/Kokkos/KokkosConfig.cmake && ! -f $root/lib64/cmake/Kokkos/KokkosConfig.cmake ]]; then
    echo "gpu_builds: $name build skipped: no Kokkos 4 $name install at $root"
    return
  fi
  if ! command -v "$cxx" >/dev/null && [[ ! -x $cxx ]]; then
    echo "gpu_builds: $name build skipped: no compiler $cxx"
    return
  fi
  echo "gpu_builds: $name build against $root"
  if cmake -B "build-${name,,}" -S . -DCMAKE_BUILD_TYPE=Release -DKokkos_ROOT="$root" -DCMAKE_CXX_COMPILER="$cxx" "$@" \
       >"build-${name,,}.log" 2>&1 && cmake --build "build-${name,,}" -j"$(nproc)" >>"build-${name,,}.log" 2>&1; then
    if grep -q "warning:" "build-${name,,}.log"; then echo "gpu_builds: $name build has warnings:"; grep "warning:" "build-${name,,}.log" | head; status=1; fi
    echo "gpu_builds: $name build done ($(grep -oE "rewarm: (no )?cuDNN fused attention|rewarm: (gradient collectives over [^ ]*|no NCCL/RCCL)" "build-${name,,}.log" | sed 's/rewarm: //' | paste -sd ';' -))"
  else
    echo "gpu_builds: $name build FAILED (build-${name,,}.log):"; tail -20 "build-${name,,}.log"; status=1
  fi
}
cuda=${KOKKOS_CUDA_ROOT:-$PWD/.deps/kokkos-cuda}
hip=${KOKKOS_HIP_ROOT:-$PWD/.deps/kokkos-hip}
# Unity batches (CMAKE_UNITY_BUILD): nvcc and hipcc parse Kokkos once per batch of 8 files, not
# once per file (the CUDA build: 4.5 instead of 9 minutes on 2 cores). These builds are checks of
# errors and warnings; a file that misses an include is caught by the host builds, file by file.
unity=(-DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=8)
build CUDA "$cuda" "$cuda/bin/nvcc_wrapper" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DBUILD_TESTING=OFF "${unity[@]}"  # cuDNN, NCCL
build HIP "$hip" hipcc -DREWARM_ALLOW_NATIVE_GEMM=${REWARM_ALLOW_NATIVE_GEMM:-ON} -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  -DBUILD_TESTING=OFF "${unity[@]}"

# A file as a build compiles it, changed: definitions removed (a feature switched off) or added
# with an include directory (the paths of a library this machine has only the headers of).
compile_check() {  # name build source header-to-need(or -) extra-args...
  local name=$1 dir=$2 source=$3 need=$4
  shift 4
  if [[ $need != - && ! -f $need ]]; then
    echo "gpu_builds: $name compile check skipped: no $need"
    return
  elif [[ ! -f $dir/compile_commands.json ]]; then
    echo "gpu_builds: $name compile check skipped: no $dir build"
    return
  fi
  local cmd out
  cmd=$(/usr/bin/python3 - "$dir" "$source" "$@" <<'PY'
import json, shlex, sys
dir, source, *extra = sys.argv[1:]
c = next(c for c in json.load(open(f"{dir}/compile_commands.json")) if c["file"].endswith(source))
args = shlex.split(c["command"])
args[args.index("-o") + 1] = "/dev/null"
drop = {e[2:] for e in extra if e.startswith("-U")}  # -UNAME: leave out -DNAME[=...]
args = [a for a in args if not (a.startswith("-D") and a[2:].split("=")[0] in drop)]
print(shlex.join(["cd", c["directory"]]), "&&", shlex.join(args + [e for e in extra if not e.startswith("-U")]))
PY
)
  if out=$(eval "$cmd" 2>&1) && ! grep -q "warning" <<<"$out"; then
    echo "gpu_builds: $name compile check done ($source)"
  else
    echo "gpu_builds: $name compile check FAILED:"; head -30 <<<"$out"; status=1
  fi
}
# the CUDA build without cuDNN and NCCL: its two files that differ (-DREWARM_CUDNN=OFF -DREWARM_NCCL=OFF)
compile_check CUDA-plain build-cuda src/model/layers/fused_attention.cpp - -UREWARM_CUDNN -UCUDNN_FRONTEND_SKIP_JSON_LIB
compile_check CUDA-plain build-cuda src/parallel/device_collectives.cpp - -UREWARM_NCCL
rocblas=${ROCBLAS_INCLUDE:-$PWD/.deps/rocblas/include} rccl=${RCCL_INCLUDE:-$PWD/.deps/rccl/include}
compile_check rocBLAS build-hip src/core/gemm.cpp "$rocblas/rocblas/rocblas.h" -DREWARM_COMPILE_CHECK_ROCBLAS -isystem "$rocblas"
compile_check RCCL build-hip src/parallel/device_collectives.cpp "$rccl/rccl/rccl.h" -DREWARM_COMPILE_CHECK_RCCL -isystem "$rccl"
exit $status
