#!/usr/bin/env bash
# The OpenMP build and (nearly) every test on it: rewarm and its tests built against a Kokkos 4 OpenMP
# install (KOKKOS_OPENMP_ROOT, default .deps/kokkos-openmp; scripts/unpack_deps.sh unpacks the
# project's prebuilt one) in build-openmp/, without a compiler warning, then through ctest with
# two OpenMP threads per process: the unit tests, the communicator on 1 and 2 ranks, the Python
# end-to-end tests (the MPI equality matrices and SLURM included, against the Debian build in
# build/ too), and the kernel tests again with teams of 2 and 4 threads. Run after
# scripts/setup.sh --tests. Without the install it says so and stops (a failure under
# REWARM_NO_SKIPS=1, as in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${KOKKOS_OPENMP_ROOT:-$PWD/.deps/kokkos-openmp}
if [[ ! -f $root/lib/cmake/Kokkos/KokkosConfig.cmake && ! -f $root/lib64/cmake/Kokkos/KokkosConfig.cmake ]]; then
  echo "test_openmp: skipped: no Kokkos 4 OpenMP install at $root (scripts/unpack_deps.sh; README \"CPU nodes\")"
  [[ ${REWARM_NO_SKIPS:-} == 1 ]] && exit 1
  exit 0
fi
echo "test_openmp: build against $root"
# Unity batches of 8 files (CMAKE_UNITY_BUILD): the same code in less compile time; the Debian
# build compiles file by file (a missing include shows there). Not here: the Python tests whose
# subject is the same with either build (the report's Python, the GPU builds' file commands, the
# device script's dry run: its logic, run with the Debian build in scripts/test.sh).
if ! { cmake -B build-openmp -S . -DCMAKE_BUILD_TYPE=Release -DKokkos_ROOT="$root" -DCMAKE_UNITY_BUILD=ON \
         -DCMAKE_UNITY_BUILD_BATCH_SIZE=8 -DREWARM_PYTEST_SELECT="not postprocess and not gpu_build and not gpu_check" &&
       cmake --build build-openmp -j"$(nproc)"; } >build-openmp.log 2>&1; then
  echo "test_openmp: build FAILED (build-openmp.log):"; tail -20 build-openmp.log; exit 1
fi
if grep -q "warning" build-openmp.log; then echo "test_openmp: build has warnings:"; grep -A3 "warning" build-openmp.log | head -20; exit 1; fi
# OMP_PROC_BIND=false: ranks under mpirun --oversubscribe share the cores, unconfined (docs/cpu.md)
export OMP_NUM_THREADS=2 OMP_PROC_BIND=false
cd build-openmp
ctest --output-on-failure --timeout 1500
