#!/usr/bin/env bash
# The GPU builds, where this machine has what they need, each said to be built or skipped and why
# (never silently): CUDA against a Kokkos 4 CUDA install (KOKKOS_CUDA_ROOT, default
# .deps/kokkos-cuda), HIP against a Kokkos 4 HIP install (KOKKOS_HIP_ROOT, default
# .deps/kokkos-hip). Neither Kokkos is a Debian package and CI does not fetch one, so on CI both
# are skipped; README "Building on a cluster" says how to make them. A build that exists is
# then tested on this machine without a GPU by tests/python/test_gpu_build.py (the login node).
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
    echo "gpu_builds: $name build done"
  else
    echo "gpu_builds: $name build FAILED (build-${name,,}.log):"; tail -20 "build-${name,,}.log"; status=1
  fi
}
cuda=${KOKKOS_CUDA_ROOT:-$PWD/.deps/kokkos-cuda}
hip=${KOKKOS_HIP_ROOT:-$PWD/.deps/kokkos-hip}
build CUDA "$cuda" "$cuda/bin/nvcc_wrapper"
build HIP "$hip" hipcc -DREWARM_ALLOW_NATIVE_GEMM=${REWARM_ALLOW_NATIVE_GEMM:-OFF}
exit $status
