// Causal multi-head attention, streamed: one thread per (batch, head, query) walks the keys
// with an online softmax, so no T×T matrix is ever stored (memory O(B·H·T) beyond q, k, v).
// The backward pass recomputes probabilities from the saved log-sum-exp, without atomics.
#pragma once
#include <cmath>
#include "core/types.hpp"

namespace rewarm::layers {

struct AttentionShape {
  Index batch, seq, heads, hd;
};

namespace detail {
template <class T>
KOKKOS_INLINE_FUNCTION T dot(const Matrix<T>& a, Index ra, Index ca, const Matrix<T>& b, Index rb, Index cb, Index n) {
  T s = 0;
  for (Index j = 0; j < n; ++j) s += a(ra, ca + j) * b(rb, cb + j);
  return s;
}
}  // namespace detail

// qkv[N,3d] (after rotary) -> out[N,d] (heads merged), lse[B·H·T]
template <class T>
void attention_forward(const Matrix<T>& out, const Vector<T>& lse, const Matrix<T>& qkv, AttentionShape s) {
  const Index Tn = s.seq, H = s.heads, hd = s.hd;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  Kokkos::parallel_for("rewarm::attention_fwd", Range(0, s.batch * H * Tn), KOKKOS_LAMBDA(Index i) {
    const Index t = i % Tn, h = (i / Tn) % H, b = i / (Tn * H);
    const Index nq = b * Tn + t, cq = h * 3 * hd, ck = cq + hd, cv = cq + 2 * hd, co = h * hd;
    T m = detail::dot(qkv, nq, cq, qkv, b * Tn, ck, hd) * scale, l = 1;
    for (Index k = 1; k <= t; ++k) {  // pass 1: running max and normaliser
      const T sc = detail::dot(qkv, nq, cq, qkv, b * Tn + k, ck, hd) * scale;
      if (sc > m) {
        l = l * kx::exp(m - sc) + T(1);
        m = sc;
      } else {
        l += kx::exp(sc - m);
      }
    }
    const T L = m + kx::log(l);
    lse(i) = L;
    for (Index j = 0; j < hd; ++j) out(nq, co + j) = 0;
    for (Index k = 0; k <= t; ++k) {  // pass 2: probability-weighted values
      const T p = kx::exp(detail::dot(qkv, nq, cq, qkv, b * Tn + k, ck, hd) * scale - L);
      for (Index j = 0; j < hd; ++j) out(nq, co + j) += p * qkv(b * Tn + k, cv + j);
    }
  });
}

// dqkv[N,3d] = ∂L/∂qkv given dout[N,d]; delta[B·H·T] is scratch (Σ dout·out per query).
template <class T>
void attention_backward(const Matrix<T>& dqkv, const Vector<T>& delta, const Matrix<T>& dout, const Matrix<T>& out,
                        const Vector<T>& lse, const Matrix<T>& qkv, AttentionShape s) {
  const Index Tn = s.seq, H = s.heads, hd = s.hd;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  // dq_t = scale·Σ_k p_tk (dout_t·v_k − δ_t) k_k
  Kokkos::parallel_for("rewarm::attention_bwd_q", Range(0, s.batch * H * Tn), KOKKOS_LAMBDA(Index i) {
    const Index t = i % Tn, h = (i / Tn) % H, b = i / (Tn * H);
    const Index nq = b * Tn + t, cq = h * 3 * hd, ck = cq + hd, cv = cq + 2 * hd, co = h * hd;
    const T dl = detail::dot(dout, nq, co, out, nq, co, hd);
    delta(i) = dl;
    for (Index j = 0; j < hd; ++j) dqkv(nq, cq + j) = 0;
    for (Index k = 0; k <= t; ++k) {
      const Index nk = b * Tn + k;
      const T p = kx::exp(detail::dot(qkv, nq, cq, qkv, nk, ck, hd) * scale - lse(i));
      const T ds = p * (detail::dot(dout, nq, co, qkv, nk, cv, hd) - dl) * scale;
      for (Index j = 0; j < hd; ++j) dqkv(nq, cq + j) += ds * qkv(nk, ck + j);
    }
  });
  // dk_k = scale·Σ_{t≥k} p_tk (dout_t·v_k − δ_t) q_t;  dv_k = Σ_{t≥k} p_tk dout_t
  Kokkos::parallel_for("rewarm::attention_bwd_kv", Range(0, s.batch * H * Tn), KOKKOS_LAMBDA(Index i) {
    const Index k = i % Tn, h = (i / Tn) % H, b = i / (Tn * H);
    const Index nk = b * Tn + k, cq = h * 3 * hd, ck = cq + hd, cv = cq + 2 * hd, co = h * hd;
    for (Index j = 0; j < hd; ++j) dqkv(nk, ck + j) = dqkv(nk, cv + j) = 0;
    for (Index t = k; t < Tn; ++t) {
      const Index nq = b * Tn + t, iq = (b * H + h) * Tn + t;
      const T p = kx::exp(detail::dot(qkv, nq, cq, qkv, nk, ck, hd) * scale - lse(iq));
      const T ds = p * (detail::dot(dout, nq, co, qkv, nk, cv, hd) - delta(iq)) * scale;
      for (Index j = 0; j < hd; ++j) {
        dqkv(nk, ck + j) += ds * qkv(nq, cq + j);
        dqkv(nk, cv + j) += p * dout(nq, co + j);
      }
    }
  });
}

}  // namespace rewarm::layers
