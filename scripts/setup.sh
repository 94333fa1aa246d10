#!/usr/bin/env bash
# Installs what rewarm needs from Debian/Ubuntu packages (only what is missing), then
# configures and builds it into build/. `--tests` also installs the Python test oracles and a
# SLURM that scripts/slurm_local.sh runs on this machine to test jobscripts/, and Debian's hipcc
# for the HIP build of scripts/gpu_builds.sh. `--target T`
# (repeatable) builds only those targets (the demo: just `rewarm`); by default, everything.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make pkg-config
          libtrilinos-kokkos-dev libtrilinos-kokkos-kernels-dev libopenblas-dev
          libopenmpi-dev openmpi-bin libhdf5-openmpi-dev
          libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libicu-dev libzstd-dev catch2
          python3 python3-numpy python3-h5py python3-pandas python3-matplotlib)  # postprocess: figures, tables
tests=0 targets=()
while (($#)); do
  case $1 in
    --tests) tests=1; shift ;;
    --target) targets+=(--target "$2"); shift 2 ;;
    *) echo "setup.sh: unknown option $1 (--tests, --target T)" >&2; exit 2 ;;
  esac
done
if ((tests)); then
  packages+=(python3-pytest python3-torch zstd
             libopenblas-openmp-dev  # OpenBLAS on the OpenMP threads, for scripts/test_openmp.sh's build
             slurmctld slurmd slurm-client munge
             hipcc libamdhip64-dev rocm-device-libs)  # scripts/gpu_builds.sh's HIP build (no AMD GPU needed)
  command -v npm >/dev/null || packages+=(nodejs npm)  # the HF tokenizers oracle runs on Node.js
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -B build -S . -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" "${targets[@]}"
