// Small element-wise and column kernels shared by the layers.
#pragma once
#include "core/types.hpp"

namespace rewarm::layers {

// out[i] = a[i] + b[i]
template <class T>
void add(const Vector<T>& out, const Vector<T>& a, const Vector<T>& b) {
  Kokkos::parallel_for(
      "rewarm::add", Range(0, out.extent(0)), KOKKOS_LAMBDA(Index i) { out(i) = a(i) + b(i); });
}

// y[N,C] += bias[C] broadcast over rows
template <class T>
void add_bias(const Matrix<T>& y, const Vector<T>& bias) {
  const Index C = y.extent(1);
  Kokkos::parallel_for(
      "rewarm::add_bias", Range(0, y.extent(0) * C), KOKKOS_LAMBDA(Index i) { y(i / C, i % C) += bias(i % C); });
}

// db[C] += sum over rows of dy[N,C]. One thread per column: deterministic, no atomics.
template <class T>
void add_column_sums(const Vector<T>& db, const Matrix<T>& dy) {
  const Index N = dy.extent(0);
  Kokkos::parallel_for(
      "rewarm::column_sums", Range(0, dy.extent(1)), KOKKOS_LAMBDA(Index j) {
        T s = 0;
        for (Index n = 0; n < N; ++n) s += dy(n, j);
        db(j) += s;
      });
}

}  // namespace rewarm::layers
