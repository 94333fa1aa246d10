#!/usr/bin/env bash
# The full test suite: set up (packages + build), then every test through ctest: the Catch2
# unit tests and the Python end-to-end tests against the PyTorch oracle.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
cd build
ctest --output-on-failure --timeout 1500
