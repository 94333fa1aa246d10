#!/usr/bin/env bash
# The sanitizer job, in build-checked/: rewarm built with AddressSanitizer and UndefinedBehavior-
# Sanitizer against the OpenMP Kokkos with Kokkos' own bounds checks (KOKKOS_CHECKED_ROOT, default
# .deps/kokkos-openmp-checked: every View index is checked, and an out-of-range one aborts naming
# the View). Kokkos checks indices within a view; the sanitizers check what it cannot see: raw
# pointers (the GEMM operands, a flat buffer cut into matrices: core/types.hpp's batch_matrix
# checks those cuts against the buffer's end), the host code and its parsers. Without that
# install it builds against Debian's Kokkos (Serial, no bounds checks) and says so.
#
# It runs, with 2 OpenMP threads: the fuzz-style input test (random truncations and bit flips of
# Megatron indexes and safetensors files), the unit tests (and the kernel tests again with teams
# of 2 threads), and the end-to-end tests that drive the sanitized binary (but those below).
# Run after scripts/setup.sh --tests.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${KOKKOS_CHECKED_ROOT:-$PWD/.deps/kokkos-openmp-checked}
kokkos=()
if [[ -f $root/lib/cmake/Kokkos/KokkosConfig.cmake || -f $root/lib64/cmake/Kokkos/KokkosConfig.cmake ]]; then
  kokkos=(-DKokkos_ROOT="$root")
  echo "asan: against $root (Kokkos bounds checks)"
else
  echo "asan: no bounds-checked Kokkos at $root: against Debian's Kokkos, without Kokkos' bounds checks"
  [[ ${REWARM_NO_SKIPS:-} == 1 ]] && exit 1
fi
# -O1: ASan's advice (-O0 would double the tests' time); -g1: line tables for the reports, a third
# less compile time than -g
# Unity batches of 8 files (CMAKE_UNITY_BUILD): the same code in less compile time.
cmake -B build-checked -S . -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DREWARM_PYTHON_TESTS=OFF "${kokkos[@]}" \
      -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=8 \
      -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" >/dev/null
cmake --build build-checked -j"$(nproc)" --target rewarm_fuzz rewarm_tests rewarm rewarm_io_faults >build-checked.log 2>&1 ||
  { tail -30 build-checked.log; exit 1; }
# HDF5 keeps library-lifetime allocations that LeakSanitizer would report. The write-failure
# tests preload tests/faults/io_faults.c ahead of the sanitizer's runtime, which it then allows.
export ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 OMP_NUM_THREADS=2 OMP_PROC_BIND=false
export REWARM_IO_FAULTS="$PWD/build-checked/tests/librewarm_io_faults.so"
build-checked/tests/rewarm_fuzz 2000
build-checked/tests/rewarm_tests
REWARM_TEAM_SIZE=2 build-checked/tests/rewarm_tests "[layers]~[slow],[model]~[fd],[attention]"
# Not here: the long tests of numbers (marked long_numbers), SLURM and the device script (the
# job scripts and the bundle, no new code of rewarm's), the tests that run no sanitized code (the
# GPU builds' file commands, postprocess), and the allocation under an address-space limit (the
# sanitizer's shadow memory alone exceeds it).
REWARM_BIN="$PWD/build-checked/src/rewarm" /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests/python \
  -m "not long_numbers" -k "not slurm and not gpu_check and not gpu_build and not postprocess and not fails_anyway"
