#!/usr/bin/env bash
# Builds the CUDA rewarm and its tests here and packs them, with every shared library they need
# that a GPU machine lacks (the ldd closure minus glibc and the CUDA driver and toolkit), the
# inputs of the device check and this machine's reference runs of it, into one archive:
# .bundle/rewarm-cuda.tar.xz (ignored by git; under 60 MiB). bench/gpu/run.sh runs it there.
#
#   scripts/gpu_bundle.sh        Kokkos_ROOT = a Kokkos 4.x CUDA install with Kokkos Kernels and
#                                cuBLAS (default .deps/kokkos-cuda; README "GPU builds" says how)
#   scripts/gpu_bundle.sh --cpu  a host build instead (REWARM_BUILD, default build/: the Debian
#                                one), without its libraries, uncompressed: BUNDLE_DIR/rewarm-cpu.tar
#                                for a dry run of bench/gpu/run.sh here
# BUNDLE_DIR (default .bundle) is where the archive goes. Run scripts/setup.sh first: the host
# reference runs use build/src/rewarm (with --cpu, REWARM_BUILD's rewarm).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BUNDLE_DIR:-.bundle}
cpu=$([[ ${1:-} == --cpu ]] && echo 1 || echo 0)
if ((cpu)); then
  stage=$out/rewarm-cpu build=${REWARM_BUILD:-build}
else
  stage=$out/rewarm-cuda build=build-cuda
  kokkos=${Kokkos_ROOT:-$PWD/.deps/kokkos-cuda}
  [[ -x $kokkos/bin/nvcc_wrapper ]] || { echo "gpu_bundle: no CUDA Kokkos at $kokkos (set Kokkos_ROOT)" >&2; exit 1; }
  cmake -B build-cuda -S . -DCMAKE_BUILD_TYPE=Release -DKokkos_ROOT="$kokkos" -DBUILD_TESTING=ON \
        -DCMAKE_CXX_COMPILER="$kokkos/bin/nvcc_wrapper" >/dev/null
  cmake --build build-cuda -j"$(nproc)" --target rewarm rewarm_tests rewarm_comm_tests
fi

rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib" "$stage/ref"
cp $build/src/rewarm $build/tests/rewarm_tests $build/tests/rewarm_comm_tests "$stage/bin/"

# The device check's inputs and the host's runs of it (a host build: exact bf16 emulation).
host=build/src/rewarm
((cpu)) && host=$build/src/rewarm
$host synth --out "$stage/ref/train.h5" --vocab 61 --tokens 400000 --stream-seed 2 >/dev/null
$host synth --out "$stage/ref/val.h5" --vocab 61 --tokens 20000 --stream-seed 3 >/dev/null
$host synth --out "$stage/ref/bench.h5" --vocab 256 --tokens 300000 --stream-seed 4 >/dev/null
/usr/bin/python3 - "$stage/ref/task.h5" <<'PY'  # a task file by docs/formats.md: 32 examples, 4 choices each
import sys, h5py, numpy as np
rng = np.random.default_rng(5)
ctx, co, ch, cho, ex, nb, ans = [], [0], [], [0], [0], [], []
for e in range(32):
    ctx += rng.integers(0, 61, int(rng.integers(4, 140))).tolist(); co.append(len(ctx))  # some longer than seq_len
    for c in range(4):
        ch += rng.integers(0, 61, int(rng.integers(1, 6))).tolist(); cho.append(len(ch)); nb.append(int(rng.integers(1, 20)))
    ex.append(ex[-1] + 4); ans.append(int(rng.integers(0, 4)))
with h5py.File(sys.argv[1], "w") as f:
    f.attrs.update(format="rewarm-task", format_version=1, vocab_size=61, tokenizer="none", source="gpu_bundle.sh")
    for k, v, t in [("context_tokens", ctx, "u4"), ("context_offsets", co, "i8"), ("choice_tokens", ch, "u4"),
                    ("choice_offsets", cho, "i8"), ("choice_bytes", nb, "i8"), ("example_choices", ex, "i8"), ("answer", ans, "i8")]:
        f[k] = np.array(v, dtype=t)
PY
cp bench/gpu/check.toml "$stage/ref/"
for p in fp32 bf16; do
  OPENBLAS_NUM_THREADS=1 $host train "$stage/ref/check.toml" --set run_dir="$stage/ref/host-$p" \
    --set precision.gemm="\"$p\"" --set data.train.0.path="$stage/ref/train.h5" \
    --set data.eval.0.path="$stage/ref/val.h5" --set data.tasks.0.path="$stage/ref/task.h5" >/dev/null
done
if ((cpu)); then
  tar -C "$out" -cf "$out/rewarm-cpu.tar" rewarm-cpu
  echo "gpu_bundle: $out/rewarm-cpu.tar (the Debian build, for a dry run)"
  exit 0
fi

strip --strip-unneeded "$stage"/bin/*
# Shared libraries: everything ldd resolves but glibc's own, the CUDA driver/toolkit, which the
# GPU machine has in the versions it needs (libstdc++ travels: it may be older there), and NCCL
# (linked; 200 MB) and cuDNN (loaded at run time; 500 MB), which come from its Python
# environment's nvidia-nccl-cu13 and nvidia-cudnn-cu13 (bench/gpu/run.sh finds them).
for b in "$stage"/bin/*; do ldd "$b"; done | awk '/=> \// {print $3}' | sort -u |
  grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv)\.so|/ld-linux|libcuda\.so|libcudart|libcublas|libnvidia|libnccl|libcudnn' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done

# Started with only the bundle on the library path, the CPU-side tools of the CUDA build work
# here, on a machine without a GPU (the login-node case; the CUDA toolkit's stub driver stands
# in for the driver such a node has).
stub=$(mktemp -d)
ln -s "${CUDA_HOME:-/usr/local/cuda}/lib64/stubs/libcuda.so" "$stub/libcuda.so.1"
LD_LIBRARY_PATH="$stage/lib:$stub" "$stage/bin/rewarm" --version
LD_LIBRARY_PATH="$stage/lib:$stub" "$stage/bin/rewarm" info "$stage/ref/val.h5" | head -1
rm -rf "$stub"

tar -C "$out" -cf - rewarm-cuda | xz -T0 -6 > "$out/rewarm-cuda.tar.xz"
size=$(stat -c %s "$out/rewarm-cuda.tar.xz")
echo "gpu_bundle: $out/rewarm-cuda.tar.xz, $((size / 1048576)) MiB ($(ls "$stage/lib" | wc -l) libraries)"
(( size < 60 * 1048576 )) || { echo "gpu_bundle: over 60 MiB" >&2; exit 1; }
