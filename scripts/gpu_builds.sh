#!/usr/bin/env bash
# The GPU builds, where this machine has what they need, each said to be built or skipped and why
# (never silently): CUDA against a Kokkos 4 CUDA install (KOKKOS_CUDA_ROOT, default
# .deps/kokkos-cuda) twice, with cuDNN's fused attention (cudnn-frontend: CUDNN_FRONTEND_ROOT,
# default .deps/cudnn-frontend) and NCCL in build-cuda/, without them in build-cuda-plain/, HIP against a Kokkos 4 HIP install (KOKKOS_HIP_ROOT, default
# .deps/kokkos-hip). Neither Kokkos is a Debian package: scripts/unpack_deps.sh unpacks the
# project's prebuilt installs into .deps/ (CI does, before this script); README "Building on a
# cluster" says how to make them. No rocBLAS is packaged, so the HIP build is a compile check with
# Kokkos Kernels' own GEMM (REWARM_ALLOW_NATIVE_GEMM, default ON here; never for runs). A build that exists is
# then tested on this machine without a GPU by tests/python/test_gpu_build.py (the login node).
# Last, compile checks of the rocBLAS paths (src/core/gemm.cpp) and the RCCL paths
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
build CUDA "$cuda" "$cuda/bin/nvcc_wrapper"                         # with cuDNN's fused attention (cudnn-frontend in .deps/)
build CUDA-plain "$cuda" "$cuda/bin/nvcc_wrapper" -DREWARM_CUDNN=OFF -DREWARM_NCCL=OFF  # without either
build HIP "$hip" hipcc -DREWARM_ALLOW_NATIVE_GEMM=${REWARM_ALLOW_NATIVE_GEMM:-ON} -DCMAKE_EXPORT_COMPILE_COMMANDS=ON

# A file as the HIP build compiles it, with the paths of a library this machine has only the
# headers of switched on: rocBLAS's GEMMs (src/core/gemm.cpp) and RCCL's collectives
# (src/parallel/device_collectives.cpp).
compile_check() {  # name source macro include_dir header
  local name=$1 source=$2 macro=$3 include=$4 header=$5
  if [[ ! -f $include/$header ]]; then
    echo "gpu_builds: $name compile check skipped: no $header under $include"
    return
  elif [[ ! -f build-hip/compile_commands.json ]]; then
    echo "gpu_builds: $name compile check skipped: no HIP build"
    return
  fi
  local cmd out
  cmd=$(/usr/bin/python3 - "$source" "$macro" "$include" <<'PY'
import json, shlex, sys
source, macro, include = sys.argv[1:]
c = next(c for c in json.load(open("build-hip/compile_commands.json")) if c["file"].endswith(source))
args = shlex.split(c["command"])
args[args.index("-o") + 1] = "/dev/null"
print(shlex.join(["cd", c["directory"]]), "&&", shlex.join(args + ["-D" + macro, "-isystem", include]))
PY
)
  if out=$(eval "$cmd" 2>&1) && ! grep -q "warning:" <<<"$out"; then
    echo "gpu_builds: $name compile check done ($source against $include)"
  else
    echo "gpu_builds: $name compile check FAILED:"; head -30 <<<"$out"; status=1
  fi
}
compile_check rocBLAS src/core/gemm.cpp REWARM_COMPILE_CHECK_ROCBLAS "${ROCBLAS_INCLUDE:-$PWD/.deps/rocblas/include}" rocblas/rocblas.h
compile_check RCCL src/parallel/device_collectives.cpp REWARM_COMPILE_CHECK_RCCL "${RCCL_INCLUDE:-$PWD/.deps/rccl/include}" rccl/rccl.h
exit $status
