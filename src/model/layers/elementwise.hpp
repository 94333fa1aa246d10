// Element-wise kernels and the deterministic column reduction shared by the layers.
#pragma once
#include "core/launch.hpp"

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
  for_each_element(
      "rewarm::add_bias", rows_cols(y.extent(0), y.extent(1)),
      KOKKOS_LAMBDA(Index n, Index j) { y(n, j) += bias(j); });
}

// out = a + x + bx (+ y + by when y is given): the residual adds of a layer, with the biases of
// the projections that feed them (GEMMs write without bias), in one pass.
template <class T>
void residual_add(const Matrix<T>& out, const Matrix<T>& a, const Matrix<T>& x, const Vector<T>& bx,
                  const Matrix<T>& y, const Vector<T>& by) {
  const bool two = y.data() != nullptr;
  for_each_element(
      "rewarm::residual_add", rows_cols(out.extent(0), out.extent(1)),
      KOKKOS_LAMBDA(Index n, Index j) {
        T v = a(n, j) + (x(n, j) + bx(j));
        if (two) v += y(n, j) + by(j);
        out(n, j) = v;
      });
}

// Rows summed per block in the first pass of a column reduction.
constexpr Index kColumnBlock = 256;

// Scratch of the column reductions: partial sums [blocks of rows, columns].
template <class T>
View1<T> column_scratch(Index rows, Index max_cols) {
  return View1<T>("rewarm::column_partials", ((rows + kColumnBlock - 1) / kColumnBlock) * max_cols);
}

// out[j] += Σ_n f(n, j) over the rows of an N×C array, deterministically and without atomics:
// partial sums over blocks of kColumnBlock rows (a thread per (block, column), adjacent threads
// on adjacent columns), then the partials of each column in order. The sum order depends only on
// N, not on the backend or its thread count, so a result never changes from run to run.
template <class T, class F>
void add_column_reduction(const char* label, const Vector<T>& out, Index N, Index C, const View1<T>& partials, F f) {
  const Index blocks = (N + kColumnBlock - 1) / kColumnBlock;
  for_each_element(
      label, rows_cols(blocks, C), KOKKOS_LAMBDA(Index b, Index j) {
        const Index end = (b + 1) * kColumnBlock < N ? (b + 1) * kColumnBlock : N;
        T s = 0;
        for (Index n = b * kColumnBlock; n < end; ++n) s += f(n, j);
        partials(b * C + j) = s;
      });
  Kokkos::parallel_for(
      label, Range(0, C), KOKKOS_LAMBDA(Index j) {
        T s = 0;
        for (Index b = 0; b < blocks; ++b) s += partials(b * C + j);
        out(j) += s;
      });
}

// db[C] += sum over rows of dy[N,C]
template <class T>
void add_column_sums(const Vector<T>& db, const Matrix<T>& dy, const View1<T>& partials) {
  add_column_reduction("rewarm::column_sums", db, dy.extent(0), dy.extent(1), partials,
                       KOKKOS_LAMBDA(Index n, Index j) { return dy(n, j); });
}

}  // namespace rewarm::layers
