// Causal multi-head attention, one (batch, head) at a time: S = Q·Kᵀ and O = P·V are GEMMs,
// the masked softmax a row kernel. Only one T×T score matrix (two in the backward pass) exists
// at any time, whatever the batch and head count; the backward pass recomputes the
// probabilities from the saved log-sum-exp instead of storing them.
#pragma once
#include <cmath>

#include "core/gemm.hpp"

namespace rewarm::layers {

struct AttentionShape {
  Index batch, seq, heads, hd;
};

// Scratch shared by all layers: heads split out of qkv ([B,H,T,hd] each) and T×T scores.
template <class T>
struct AttentionWorkspace {
  View1<T> q, k, v, o, s, p, delta, qk;
  AttentionWorkspace() = default;
  explicit AttentionWorkspace(AttentionShape a) {
    const Index n = a.batch * a.heads * a.seq * a.hd;
    auto buf = [](const char* name, Index len) {
      return View1<T>(Kokkos::view_alloc(std::string(name), Kokkos::WithoutInitializing), len);
    };
    q = buf("rewarm::attn_q", n), k = buf("rewarm::attn_k", n), v = buf("rewarm::attn_v", n),
    o = buf("rewarm::attn_o", n);
    s = buf("rewarm::attn_s", a.seq * a.seq), p = buf("rewarm::attn_p", a.seq * a.seq);
    delta = buf("rewarm::attn_delta", a.batch * a.heads * a.seq);
    qk = buf("rewarm::attn_qk_head", 2 * a.seq * a.hd);
  }
};

namespace detail {
// The head-major index of element j of head h at row n = b·T + t.
KOKKOS_INLINE_FUNCTION Index head_index(Index n, Index h, Index j, Index Tn, Index H, Index hd) {
  return (((n / Tn) * H + h) * Tn + n % Tn) * hd + j;
}

// qkv[N,3d] (per head [q|k|v]) <-> q, k, v [B,H,T,hd]. to_heads = false writes them back in qkv's layout.
template <class T>
void split_heads(const Matrix<T>& qkv, const AttentionWorkspace<T>& w, AttentionShape s, bool to_heads) {
  const Index Tn = s.seq, H = s.heads, hd = s.hd, per_row = H * hd;
  auto q = w.q, k = w.k, v = w.v;
  Kokkos::parallel_for(
      "rewarm::attn_split_heads", Range(0, qkv.extent(0) * per_row), KOKKOS_LAMBDA(Index i) {
        const Index n = i / per_row, h = (i % per_row) / hd, j = i % hd, c = h * 3 * hd + j;
        const Index x = head_index(n, h, j, Tn, H, hd);
        if (to_heads) {
          q(x) = qkv(n, c), k(x) = qkv(n, c + hd), v(x) = qkv(n, c + 2 * hd);
        } else {
          qkv(n, c) = q(x), qkv(n, c + hd) = k(x), qkv(n, c + 2 * hd) = v(x);
        }
      });
}

// p[T,T] = causal softmax of scale·s by rows (zero above the diagonal). With `save`, the row
// log-sum-exp is stored in lse; otherwise lse is read (the backward pass's recomputation).
template <class T>
void causal_softmax(const View1<T>& p, const View1<T>& s, const Vector<T>& lse, Index Tn, T scale, bool save) {
  Kokkos::parallel_for(
      "rewarm::attn_softmax", Range(0, Tn), KOKKOS_LAMBDA(Index t) {
        const Index row = t * Tn;
        if (save) {  // exponentials once: p = exp(scale·s − max), then normalise
          T m = s(row) * scale;
          for (Index k = 1; k <= t; ++k) m = s(row + k) * scale > m ? s(row + k) * scale : m;
          T z = 0;
          for (Index k = 0; k <= t; ++k) z += (p(row + k) = kx::exp(s(row + k) * scale - m));
          lse(t) = m + kx::log(z);
          const T inv = T(1) / z;
          for (Index k = 0; k <= t; ++k) p(row + k) *= inv;
        } else {
          const T L = lse(t);
          for (Index k = 0; k <= t; ++k) p(row + k) = kx::exp(s(row + k) * scale - L);
        }
        for (Index k = t + 1; k < Tn; ++k) p(row + k) = 0;
      });
}

template <class T>  // rows×cols starting at element `offset` of v
Matrix<T> block(const View1<T>& v, Index offset, Index rows, Index cols) {
  return as_matrix(v.data() + offset, rows, cols);
}
}  // namespace detail

// qkv[N,3d] (after rotary) -> out[N,d] (heads merged), lse[B·H·T]
template <class T>
void attention_forward(const Matrix<T>& out, const Vector<T>& lse, const Matrix<T>& qkv, AttentionShape s,
                       const AttentionWorkspace<T>& w) {
  using detail::block;
  const Index Tn = s.seq, hd = s.hd;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  detail::split_heads(qkv, w, s, true);
  for (Index bh = 0; bh < s.batch * s.heads; ++bh) {
    const Index off = bh * Tn * hd;
    gemm<T>('N', 'T', 1, block(w.q, off, Tn, hd), block(w.k, off, Tn, hd), 0, block(w.s, 0, Tn, Tn));
    detail::causal_softmax(w.p, w.s, Vector<T>(lse.data() + bh * Tn, Tn), Tn, scale, true);
    gemm<T>('N', 'N', 1, block(w.p, 0, Tn, Tn), block(w.v, off, Tn, hd), 0, block(w.o, off, Tn, hd));
  }
  const Index H = s.heads, d = H * hd;
  auto o = w.o;
  Kokkos::parallel_for(
      "rewarm::attn_merge_heads", Range(0, out.extent(0) * d), KOKKOS_LAMBDA(Index i) {
        const Index n = i / d, h = (i % d) / hd, j = i % hd;
        out(n, h * hd + j) = o(detail::head_index(n, h, j, Tn, H, hd));
      });
}

// dqkv[N,3d] = ∂L/∂qkv given dout[N,d], the forward's out and lse, and qkv.
// dS = P∘(dP − δ)·scale with dP = dO·Vᵀ and δ_t = dO_t·O_t; dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dO.
template <class T>
void attention_backward(const Matrix<T>& dqkv, const Matrix<T>& dout, const Matrix<T>& out, const Vector<T>& lse,
                        const Matrix<T>& qkv, AttentionShape s, const AttentionWorkspace<T>& w) {
  using detail::block;
  const Index Tn = s.seq, H = s.heads, hd = s.hd;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  detail::split_heads(qkv, w, s, true);  // q, k, v of this layer
  auto o = w.o, delta = w.delta;         // o holds dO by heads; δ per (b, h, t)
  Kokkos::parallel_for(
      "rewarm::attn_delta", Range(0, out.extent(0) * H), KOKKOS_LAMBDA(Index i) {
        const Index n = i / H, h = i % H;
        T dl = 0;
        for (Index j = 0; j < hd; ++j) {
          o(detail::head_index(n, h, j, Tn, H, hd)) = dout(n, h * hd + j);
          dl += dout(n, h * hd + j) * out(n, h * hd + j);
        }
        delta(((n / Tn) * H + h) * Tn + n % Tn) = dl;
      });
  // dq, dk, dv overwrite q, k, v head by head once their inputs are used: dV needs P and dO,
  // dQ needs K, dK needs Q, so this head's Q and K are copied aside first.
  const auto qk_copy = w.qk;
  for (Index bh = 0; bh < s.batch * H; ++bh) {
    const Index off = bh * Tn * hd;
    const auto Q = block(w.q, off, Tn, hd), K = block(w.k, off, Tn, hd), V = block(w.v, off, Tn, hd);
    const auto dO = block(w.o, off, Tn, hd), S = block(w.s, 0, Tn, Tn), P = block(w.p, 0, Tn, Tn);
    gemm<T>('N', 'T', 1, Q, K, 0, S);
    detail::causal_softmax(w.p, w.s, Vector<T>(lse.data() + bh * Tn, Tn), Tn, scale, false);
    gemm<T>('N', 'T', 1, dO, V, 0, S);  // S now holds dP
    gemm<T>('T', 'N', 1, P, dO, 0, V);  // V now holds dV
    auto sv = w.s, pv = w.p;
    const Index dbase = bh * Tn;
    Kokkos::parallel_for(
        "rewarm::attn_dscores", Range(0, Tn * Tn), KOKKOS_LAMBDA(Index i) {
          sv(i) = pv(i) * (sv(i) - delta(dbase + i / Tn)) * scale;  // S now holds dS
        });
    Kokkos::deep_copy(Kokkos::subview(qk_copy, std::make_pair(Index(0), Tn * hd)),
                      Kokkos::subview(w.q, std::make_pair(off, off + Tn * hd)));
    Kokkos::deep_copy(Kokkos::subview(qk_copy, std::make_pair(Tn * hd, 2 * Tn * hd)),
                      Kokkos::subview(w.k, std::make_pair(off, off + Tn * hd)));
    gemm<T>('N', 'N', 1, S, block(qk_copy, Tn * hd, Tn, hd), 0, Q);  // Q now holds dQ
    gemm<T>('T', 'N', 1, S, block(qk_copy, 0, Tn, hd), 0, K);        // K now holds dK
  }
  detail::split_heads(dqkv, w, s, false);
}

}  // namespace rewarm::layers
