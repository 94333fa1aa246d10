#!/usr/bin/env bash
# Unpacks the project's prebuilt Kokkos 4 dependencies (Kokkos + Kokkos Kernels for CUDA, for HIP,
# for OpenMP and for OpenMP with bounds checks; NVIDIA's header-only cudnn-frontend) from a folder
# of tarballs (REWARM_PREBUILT_DEPS, default the first of ../shared/deps and /work/shared/deps that
# exists) into the ignored .deps/, each only when absent, and links the names the build scripts
# look for: .deps/kokkos-cuda, .deps/kokkos-hip, .deps/kokkos-openmp, .deps/kokkos-openmp-checked,
# .deps/cudnn-frontend. Fetches nothing. Without the folder it says so and
# leaves .deps/ as it is (gpu_builds.sh then says which builds it skips).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${REWARM_PREBUILT_DEPS:-}
if [[ -z $src ]]; then
  for d in ../shared/deps /work/shared/deps; do [[ -d $d ]] && { src=$d; break; }; done
fi
if [[ -z $src || ! -d $src ]]; then
  echo "unpack_deps: no folder of prebuilt dependencies (set REWARM_PREBUILT_DEPS); .deps/ left as it is"
  exit 0
fi
mkdir -p .deps
unpack() {  # link-name tarball-glob
  local link=$1 tarball
  tarball=$(ls "$src"/$2 2>/dev/null | sort | tail -1 || true)
  if [[ -z $tarball ]]; then echo "unpack_deps: no $2 in $src"; return; fi
  local name
  name=$(basename "$tarball"); name=${name%.tar.xz}; name=${name%.tar.gz}
  if [[ ! -d .deps/$name ]]; then
    echo "unpack_deps: unpacking $tarball into .deps/"
    tar -xf "$tarball" -C .deps
  fi
  ln -sfn "$name" ".deps/$link"
}
unpack kokkos-cuda 'kokkos-*-cuda*.tar.xz'
unpack kokkos-hip 'kokkos-*-hip*.tar.xz'
unpack kokkos-openmp 'kokkos-*-openmp.tar.xz'
unpack kokkos-openmp-checked 'kokkos-*-openmp-checked.tar.xz'
unpack cudnn-frontend 'cudnn-frontend-*.tar.gz'
