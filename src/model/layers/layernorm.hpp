// LayerNorm over the last dimension (biased variance, as torch.nn.LayerNorm).
#pragma once
#include "core/types.hpp"

namespace rewarm::layers {

// out[N,d] = (x - mean)·rstd·w + b; keeps mean[N], rstd[N] for the backward pass.
template <class T>
void layernorm_forward(const Matrix<T>& out, const Vector<T>& mean, const Vector<T>& rstd, const Matrix<T>& x,
                       const Vector<T>& w, const Vector<T>& b, double eps) {
  const Index d = x.extent(1);
  Kokkos::parallel_for(
      "rewarm::layernorm_fwd", Range(0, x.extent(0)), KOKKOS_LAMBDA(Index n) {
        double s = 0, s2 = 0;
        for (Index j = 0; j < d; ++j) s += x(n, j);
        const double mu = s / d;
        for (Index j = 0; j < d; ++j) s2 += (x(n, j) - mu) * (x(n, j) - mu);
        const T r = T(1.0 / kx::sqrt(s2 / d + eps));
        mean(n) = T(mu);
        rstd(n) = r;
        for (Index j = 0; j < d; ++j) out(n, j) = (x(n, j) - T(mu)) * r * w(j) + b(j);
      });
}

// dx[N,d] += ∂L/∂x; dw[d] += Σ dy·x̂; db[d] += Σ dy
template <class T>
void layernorm_backward(const Matrix<T>& dx, const Vector<T>& dw, const Vector<T>& db, const Matrix<T>& dy,
                        const Matrix<T>& x, const Vector<T>& mean, const Vector<T>& rstd, const Vector<T>& w) {
  const Index N = x.extent(0), d = x.extent(1);
  Kokkos::parallel_for(
      "rewarm::layernorm_bwd_x", Range(0, N), KOKKOS_LAMBDA(Index n) {
        // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·w
        double mg = 0, mgx = 0;
        for (Index j = 0; j < d; ++j) {
          const T g = dy(n, j) * w(j), xh = (x(n, j) - mean(n)) * rstd(n);
          mg += g;
          mgx += g * xh;
        }
        const T a = T(mg / d), c = T(mgx / d);
        for (Index j = 0; j < d; ++j) {
          const T xh = (x(n, j) - mean(n)) * rstd(n);
          dx(n, j) += rstd(n) * (dy(n, j) * w(j) - a - xh * c);
        }
      });
  Kokkos::parallel_for(
      "rewarm::layernorm_bwd_w", Range(0, d), KOKKOS_LAMBDA(Index j) {
        T sw = 0, sb = 0;
        for (Index n = 0; n < N; ++n) {
          sw += dy(n, j) * (x(n, j) - mean(n)) * rstd(n);
          sb += dy(n, j);
        }
        dw(j) += sw;
        db(j) += sb;
      });
}

}  // namespace rewarm::layers
