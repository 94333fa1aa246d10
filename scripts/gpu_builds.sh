#!/usr/bin/env bash
# The GPU builds, where this machine has what they need, each said to be built or skipped and why
# (never silently): CUDA against a Kokkos 4 CUDA install (KOKKOS_CUDA_ROOT, default
# .deps/kokkos-cuda), HIP against a Kokkos 4 HIP install (KOKKOS_HIP_ROOT, default
# .deps/kokkos-hip). Neither Kokkos is a Debian package: scripts/unpack_deps.sh unpacks the
# project's prebuilt installs into .deps/ (CI does, before this script); README "Building on a
# cluster" says how to make them. No rocBLAS is packaged, so the HIP build is a compile check with
# Kokkos Kernels' own GEMM (REWARM_ALLOW_NATIVE_GEMM, default ON here; never for runs). A build that exists is
# then tested on this machine without a GPU by tests/python/test_gpu_build.py (the login node).
# Last, a compile check of the rocBLAS paths (src/core/gemm.cpp) against rocBLAS's headers
# (ROCBLAS_INCLUDE, default .deps/rocblas/include): no rocBLAS library is packaged to link.
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
build HIP "$hip" hipcc -DREWARM_ALLOW_NATIVE_GEMM=${REWARM_ALLOW_NATIVE_GEMM:-ON} -DCMAKE_EXPORT_COMPILE_COMMANDS=ON

# gemm.cpp as the HIP build compiles it, with the rocBLAS paths switched on.
rocblas=${ROCBLAS_INCLUDE:-$PWD/.deps/rocblas/include}
if [[ ! -f $rocblas/rocblas/rocblas.h ]]; then
  echo "gpu_builds: rocBLAS compile check skipped: no rocBLAS headers at $rocblas"
elif [[ ! -f build-hip/compile_commands.json ]]; then
  echo "gpu_builds: rocBLAS compile check skipped: no HIP build"
else
  cmd=$(/usr/bin/python3 - "$rocblas" <<'PY'
import json, shlex, sys
c = next(c for c in json.load(open("build-hip/compile_commands.json")) if c["file"].endswith("src/core/gemm.cpp"))
args = shlex.split(c["command"])
args[args.index("-o") + 1] = "/dev/null"
print(shlex.join(["cd", c["directory"]]), "&&", shlex.join(args + ["-DREWARM_COMPILE_CHECK_ROCBLAS", "-isystem", sys.argv[1]]))
PY
)
  if out=$(eval "$cmd" 2>&1) && ! grep -q "warning:" <<<"$out"; then
    echo "gpu_builds: rocBLAS compile check done (src/core/gemm.cpp against $rocblas)"
  else
    echo "gpu_builds: rocBLAS compile check FAILED:"; head -30 <<<"$out"; status=1
  fi
fi
exit $status
