#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer job, in build-asan/: the fuzz-style input test
# (random truncations and bit flips of Megatron indexes and safetensors files), the unit tests,
# and the Python end-to-end tests driving the sanitized binary. Run after scripts/setup.sh --tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -B build-asan -S . -DCMAKE_BUILD_TYPE=Debug -DREWARM_PYTHON_TESTS=OFF \
      -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" >/dev/null
cmake --build build-asan -j"$(nproc)" --target rewarm_fuzz rewarm_tests rewarm rewarm_io_faults
# HDF5 keeps library-lifetime allocations that LeakSanitizer would report. The write-failure
# tests preload tests/faults/io_faults.c ahead of the sanitizer's runtime, which it then allows.
export ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0
export REWARM_IO_FAULTS="$PWD/build-asan/tests/librewarm_io_faults.so"
build-asan/tests/rewarm_fuzz 2000
build-asan/tests/rewarm_tests
# the 50-second learning run is skipped here: it checks numbers, not memory, and the plain build runs it;
# so is the allocation under an address-space limit (the sanitizer's shadow memory alone exceeds it)
REWARM_BIN="$PWD/build-asan/src/rewarm" /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests/python \
  -k "not entropy and not slurm and not dry_run and not fails_anyway"
