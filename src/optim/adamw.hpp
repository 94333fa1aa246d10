// AdamW (torch.optim.AdamW semantics) and global-norm clipping on flat buffers.
#pragma once
#include <cmath>

#include "core/types.hpp"
#include "optim/adamw_config.hpp"

namespace rewarm {

// ‖g‖₂² over the buffer, accumulated in double (a rank's part of the global norm).
template <class V>
double sum_of_squares(const V& g) {
  double s = 0;
  Kokkos::parallel_reduce(
      "rewarm::grad_norm", Range(0, g.extent(0)),
      KOKKOS_LAMBDA(Index i, double& acc) { acc += double(g(i)) * double(g(i)); }, s);
  return s;
}

// ‖g‖₂ over the whole buffer.
template <class V>
double global_norm(const V& g) {
  return std::sqrt(sum_of_squares(g));
}

// torch.nn.utils.clip_grad_norm_: g *= min(1, clip/(‖g‖ + 1e-6)). Returns the factor used.
template <class V>
double clip_by_global_norm(const V& g, double norm, double clip) {
  using T = typename V::non_const_value_type;
  if (clip <= 0) return 1;
  const double coef = clip / (norm + 1e-6);
  if (coef >= 1) return 1;
  const T c = T(coef);
  Kokkos::parallel_for(
      "rewarm::clip", Range(0, g.extent(0)), KOKKOS_LAMBDA(Index i) { g(i) *= c; });
  return coef;
}

// One AdamW step t (1-based) at learning rate lr. Elements [0, decay_end) are weight-decayed.
// Same operation order as torch's single-tensor AdamW: decay, lerp m, update v, bias-corrected step.
// p, g, m, v may be a rank's slice of the buffers (decay_end then counted from the slice's start).
template <class V>
void adamw_step(const V& p, const V& g, const V& m, const V& v, Index decay_end, const AdamW& o, double lr, Index t) {
  using T = typename V::non_const_value_type;
  const T decay = T(1 - lr * o.weight_decay), b2 = T(o.beta2), eps = T(o.eps);
  const T one_m_b1 = T(1 - o.beta1), one_m_b2 = T(1 - o.beta2);
  const T step_size = T(lr / (1 - std::pow(o.beta1, double(t))));
  const T bc2_sqrt = T(std::sqrt(1 - std::pow(o.beta2, double(t))));
  Kokkos::parallel_for(
      "rewarm::adamw", Range(0, p.extent(0)), KOKKOS_LAMBDA(Index i) {
        if (i < decay_end) p(i) *= decay;
        m(i) += one_m_b1 * (g(i) - m(i));  // torch lerp with weight < 0.5
        v(i) = v(i) * b2 + one_m_b2 * g(i) * g(i);
        p(i) -= step_size * m(i) / (kx::sqrt(v(i)) / bc2_sqrt + eps);
      });
}

}  // namespace rewarm
