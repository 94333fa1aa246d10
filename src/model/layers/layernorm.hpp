// LayerNorm over the last dimension (biased variance, as torch.nn.LayerNorm): one team per row,
// statistics by team reductions in double; parameter gradients by the deterministic column
// reduction.
#pragma once
#include "model/layers/elementwise.hpp"
#include "model/layers/stored.hpp"

namespace rewarm::layers {

// out[N,d] = (x - mean)·rstd·w + b; keeps mean[N], rstd[N] for the backward pass. out: a
// Matrix<T>, or a Stored<T> (in bf16 where only bf16 GEMMs read it).
template <class T, class Out>
void layernorm_forward(const Out& out, const Vector<T>& mean, const Vector<T>& rstd, const Matrix<T>& x,
                       const Vector<T>& w, const Vector<T>& b, double eps) {
  const Index d = x.extent(1);
  Kokkos::parallel_for(
      "rewarm::layernorm_fwd", team_policy(x.extent(0)), KOKKOS_LAMBDA(const Team& m) {
        const Index n = m.league_rank();
        double s = 0, s2 = 0;
        Kokkos::parallel_reduce(Kokkos::TeamVectorRange(m, d), [&](Index j, double& acc) { acc += x(n, j); }, s);
        const double mu = s / d;
        Kokkos::parallel_reduce(
            Kokkos::TeamVectorRange(m, d), [&](Index j, double& acc) { acc += (x(n, j) - mu) * (x(n, j) - mu); }, s2);
        const T r = T(1.0 / kx::sqrt(s2 / d + eps));
        Kokkos::single(Kokkos::PerTeam(m), [&] {
          mean(n) = T(mu);
          rstd(n) = r;
        });
        Kokkos::parallel_for(Kokkos::TeamVectorRange(m, d),
                             [&](Index j) { store(out, n, j, (x(n, j) - T(mu)) * r * w(j) + b(j)); });
      });
}

// dx[N,d] += ∂L/∂x; dw[d] += Σ dy·x̂; db[d] += Σ dy
template <class T>
void layernorm_backward(const Matrix<T>& dx, const Vector<T>& dw, const Vector<T>& db, const Matrix<T>& dy,
                        const Matrix<T>& x, const Vector<T>& mean, const Vector<T>& rstd, const Vector<T>& w,
                        const View1<T>& partials) {
  const Index N = x.extent(0), d = x.extent(1);
  Kokkos::parallel_for(
      "rewarm::layernorm_bwd_x", team_policy(N), KOKKOS_LAMBDA(const Team& m) {
        // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·w
        const Index n = m.league_rank();
        const T mu = mean(n), r = rstd(n);
        double mg = 0, mgx = 0;
        Kokkos::parallel_reduce(Kokkos::TeamVectorRange(m, d), [&](Index j, double& acc) { acc += dy(n, j) * w(j); }, mg);
        Kokkos::parallel_reduce(
            Kokkos::TeamVectorRange(m, d), [&](Index j, double& acc) { acc += dy(n, j) * w(j) * ((x(n, j) - mu) * r); },
            mgx);
        const T a = T(mg / d), c = T(mgx / d);
        Kokkos::parallel_for(Kokkos::TeamVectorRange(m, d), [&](Index j) {
          const T xh = (x(n, j) - mu) * r;
          dx(n, j) += r * (dy(n, j) * w(j) - a - xh * c);
        });
      });
  add_column_reduction("rewarm::layernorm_bwd_w", dw, N, d, partials,
                       KOKKOS_LAMBDA(Index n, Index j) { return dy(n, j) * (x(n, j) - mean(n)) * rstd(n); });
  add_column_reduction("rewarm::layernorm_bwd_b", db, N, d, partials,
                       KOKKOS_LAMBDA(Index n, Index j) { return dy(n, j); });
}

}  // namespace rewarm::layers
