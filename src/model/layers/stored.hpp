// An activation as the kernel producing it stores it: in T, or, where only bf16 GEMMs read it
// (the LayerNorm outputs and the GELU output with gemm = "bf16"), rounded once to bf16, which
// those GEMMs then read as it is (2 bytes per value on GPUs, no conversion pass of their own).
// The host emulation's bf16 storage is floats holding the rounded values: the same numbers.
#pragma once
#include "core/gemm.hpp"

namespace rewarm::layers {

template <class T>
struct Stored {
  Matrix<T> t;     // stored in T, or
  Bf16Matrix b16;  // in bf16: exactly one of the two is set
};

template <class T>
KOKKOS_INLINE_FUNCTION void store(const Matrix<T>& m, Index n, Index j, T v) {
  m(n, j) = v;
}
template <class T>
KOKKOS_INLINE_FUNCTION void store(const Stored<T>& s, Index n, Index j, T v) {
  if (s.b16.m.data())
    s.b16.m(n, j) = to_bf16_storage(float(v));
  else
    s.t(n, j) = v;
}

}  // namespace rewarm::layers
