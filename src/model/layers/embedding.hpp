// Token embedding lookup (no position embedding in GPT-NeoX).
#pragma once
#include "core/types.hpp"

namespace rewarm::layers {

// out[N,d] = E[ids[n], :]
template <class T>
void embedding_forward(const Matrix<T>& out, const View1<int32_t>& ids, const Matrix<T>& E) {
  const Index d = E.extent(1);
  Kokkos::parallel_for(
      "rewarm::embedding_fwd", Range(0, out.extent(0) * d),
      KOKKOS_LAMBDA(Index i) { out(i / d, i % d) = E(ids(i / d), i % d); });
}

// dE[ids[n], :] += dout[n, :]. One thread per column keeps it deterministic without atomics.
template <class T>
void embedding_backward(const Matrix<T>& dE, const View1<int32_t>& ids, const Matrix<T>& dout) {
  const Index N = dout.extent(0);
  Kokkos::parallel_for(
      "rewarm::embedding_bwd", Range(0, dE.extent(1)), KOKKOS_LAMBDA(Index j) {
        for (Index n = 0; n < N; ++n) dE(ids(n), j) += dout(n, j);
      });
}

}  // namespace rewarm::layers
