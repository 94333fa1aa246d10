// GELU: "gelu" = exact x·Φ(x) (HF default), "gelu_fast" = tanh approximation.
#pragma once
#include "model/layers/elementwise.hpp"
#include "model/layers/stored.hpp"

namespace rewarm::layers {

template <class T>
KOKKOS_INLINE_FUNCTION T gelu(T x, bool tanh_approx) {
  if (tanh_approx) {
    const T u = T(0.7978845608028654) * (x + T(0.044715) * x * x * x);
    return T(0.5) * x * (T(1) + kx::tanh(u));
  }
  return T(0.5) * x * (T(1) + kx::erf(x * T(0.7071067811865476)));
}

template <class T>
KOKKOS_INLINE_FUNCTION T gelu_grad(T x, bool tanh_approx) {
  if (tanh_approx) {
    const T u = T(0.7978845608028654) * (x + T(0.044715) * x * x * x);
    const T t = kx::tanh(u);
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(0.7978845608028654) * (T(1) + T(3 * 0.044715) * x * x);
  }
  return T(0.5) * (T(1) + kx::erf(x * T(0.7071067811865476))) + x * kx::exp(T(-0.5) * x * x) * T(0.3989422804014327);
}

// y = gelu(x), element-wise over flat buffers
template <class T>
void gelu_forward(const Vector<T>& y, const Vector<T>& x, bool tanh_approx) {
  Kokkos::parallel_for(
      "rewarm::gelu_fwd", Range(0, x.extent(0)), KOKKOS_LAMBDA(Index i) { y(i) = gelu(x(i), tanh_approx); });
}

// dx = dy·gelu'(x); dx may alias dy
template <class T>
void gelu_backward(const Vector<T>& dx, const Vector<T>& dy, const Vector<T>& x, bool tanh_approx) {
  Kokkos::parallel_for(
      "rewarm::gelu_bwd", Range(0, x.extent(0)),
      KOKKOS_LAMBDA(Index i) { dx(i) = dy(i) * gelu_grad(x(i), tanh_approx); });
}

// The MLP's first activation in one pass: fc1[N,I] += b (kept: the backward pass needs the
// pre-activation), act = gelu(fc1) (a Matrix<T>, or a Stored<T>: in bf16 for bf16 GEMMs).
template <class T, class Out>
void bias_gelu_forward(const Matrix<T>& fc1, const Out& act, const Vector<T>& b, bool tanh_approx) {
  for_each_element(
      "rewarm::bias_gelu_fwd", rows_cols(fc1.extent(0), fc1.extent(1)),
      KOKKOS_LAMBDA(Index n, Index j) {
        const T x = fc1(n, j) + b(j);
        fc1(n, j) = x;
        store(act, n, j, gelu(x, tanh_approx));
      });
}

// act = gelu(fc1) from the stored pre-activation (bias already added): what bias_gelu_forward
// stored, bit for bit (activation recomputation).
template <class T, class Out>
void gelu_store(const Matrix<T>& fc1, const Out& act, bool tanh_approx) {
  for_each_element(
      "rewarm::gelu_recompute", rows_cols(fc1.extent(0), fc1.extent(1)),
      KOKKOS_LAMBDA(Index n, Index j) { store(act, n, j, gelu(fc1(n, j), tanh_approx)); });
}

}  // namespace rewarm::layers
