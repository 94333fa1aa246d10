#!/usr/bin/env bash
# The fuzz-style input test (random truncations and bit flips of Megatron indexes and
# safetensors files) under AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan/.
# Run after scripts/setup.sh (which installs the packages).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -B build-asan -S . -DCMAKE_BUILD_TYPE=Debug -DREWARM_PYTHON_TESTS=OFF \
      -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" >/dev/null
cmake --build build-asan -j"$(nproc)" --target rewarm_fuzz
# HDF5 keeps library-lifetime allocations that LeakSanitizer would report.
ASAN_OPTIONS=detect_leaks=0 build-asan/tests/rewarm_fuzz 2000
