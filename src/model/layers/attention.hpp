// Causal multi-head attention over groups of (batch, head) pairs: S = Q·Kᵀ and O = P·V are
// strided-batched GEMMs over a group, the masked softmax one team per score row. The group is as
// large as the workspace budget allows (all pairs at once when it fits), so the launches per
// layer do not grow with batch or head count. The backward pass recomputes the probabilities
// from the saved log-sum-exp; T×T scores live only in the workspace, never across layers.
#pragma once
#include <algorithm>
#include <cmath>

#include "core/gemm.hpp"

namespace rewarm::layers {

struct AttentionShape {
  Index batch, seq, heads, hd;
};

// Heads split out of qkv ([B·H, T, hd] each, head-major), their gradients, and the score
// workspace of one group: two [G, T, T] buffers.
template <class T>
struct AttentionWorkspace {
  Index group = 1;  // (batch, head) pairs per batched GEMM
  View1<T> q, k, v, o, dq, dk, dv, s, p, delta;
  AttentionWorkspace() = default;
  // budget_bytes bounds the two score buffers (at least one pair is always allowed).
  static Index group_for(AttentionShape a, std::size_t budget_bytes) {
    const auto per_pair = std::size_t(2) * sizeof(T) * std::size_t(a.seq * a.seq);
    return std::clamp<Index>(Index(budget_bytes / per_pair), 1, a.batch * a.heads);
  }
  AttentionWorkspace(AttentionShape a, std::size_t budget_bytes) {
    const Index pairs = a.batch * a.heads, n = pairs * a.seq * a.hd;
    group = group_for(a, budget_bytes);
    auto buf = [](const char* name, Index len) {
      return View1<T>(Kokkos::view_alloc(std::string(name), Kokkos::WithoutInitializing), len);
    };
    q = buf("rewarm::attn_q", n), k = buf("rewarm::attn_k", n), v = buf("rewarm::attn_v", n);
    o = buf("rewarm::attn_o", n), dq = buf("rewarm::attn_dq", n), dk = buf("rewarm::attn_dk", n);
    dv = buf("rewarm::attn_dv", n);
    s = buf("rewarm::attn_s", group * a.seq * a.seq), p = buf("rewarm::attn_p", group * a.seq * a.seq);
    delta = buf("rewarm::attn_delta", pairs * a.seq);
  }
};

namespace detail {

using Team = Kokkos::TeamPolicy<ExecSpace>::member_type;

// Moves between qkv[N, 3d] (per head [q|k|v]) and head-major [B·H, T, hd] buffers, one team per
// token row. to_heads: qkv → (q, k, v); otherwise (q, k, v) → qkv (their gradients).
template <class T>
void move_heads(const Matrix<T>& qkv, const View1<T>& q, const View1<T>& k, const View1<T>& v, AttentionShape s,
                bool to_heads) {
  const Index Tn = s.seq, H = s.heads, hd = s.hd;
  Kokkos::parallel_for(
      "rewarm::attn_move_heads", Kokkos::TeamPolicy<ExecSpace>(qkv.extent(0), Kokkos::AUTO),
      KOKKOS_LAMBDA(const Team& m) {
        const Index n = m.league_rank(), b = n / Tn, t = n % Tn;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, H), [&](Index h) {
          const Index x = ((b * H + h) * Tn + t) * hd, c = h * 3 * hd;
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(m, hd), [&](Index j) {
            if (to_heads) {
              q(x + j) = qkv(n, c + j), k(x + j) = qkv(n, c + hd + j), v(x + j) = qkv(n, c + 2 * hd + j);
            } else {
              qkv(n, c + j) = q(x + j), qkv(n, c + hd + j) = k(x + j), qkv(n, c + 2 * hd + j) = v(x + j);
            }
          });
        });
      });
}

// out[N, d] ↔ o [B·H, T, hd]; to_heads moves out into o.
template <class T>
void move_merged(const Matrix<T>& out, const View1<T>& o, AttentionShape s, bool to_heads) {
  const Index Tn = s.seq, H = s.heads, hd = s.hd;
  Kokkos::parallel_for(
      "rewarm::attn_move_merged", Kokkos::TeamPolicy<ExecSpace>(out.extent(0), Kokkos::AUTO),
      KOKKOS_LAMBDA(const Team& m) {
        const Index n = m.league_rank(), b = n / Tn, t = n % Tn;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, H), [&](Index h) {
          const Index x = ((b * H + h) * Tn + t) * hd;
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(m, hd), [&](Index j) {
            if (to_heads)
              o(x + j) = out(n, h * hd + j);
            else
              out(n, h * hd + j) = o(x + j);
          });
        });
      });
}

// One team per score row of the group starting at pair `first`: row t of pair g holds
// S = Q·Kᵀ. Forward: p = causal softmax(scale·S) and lse = its log-sum-exp. Backward (dp holds
// dO·Vᵀ): p = exp(scale·S − lse), recomputed, and dp becomes dS = p∘(dp − δ)·scale.
template <class T>
void softmax_rows(const View1<T>& s, const View1<T>& p, const View1<T>& dp, const Vector<T>& lse,
                  const View1<T>& delta, Index first, Index count, Index Tn, T scale, bool backward) {
  Kokkos::parallel_for(
      backward ? "rewarm::attn_softmax_bwd" : "rewarm::attn_softmax_fwd",
      Kokkos::TeamPolicy<ExecSpace>(count * Tn, Kokkos::AUTO), KOKKOS_LAMBDA(const Team& m) {
        const Index r = m.league_rank(), t = r % Tn, row = r * Tn, stat = first * Tn + r;
        if (backward) {  // one exponential per score: p from the saved log-sum-exp, then dS
          const T L = lse(stat), dl = delta(stat);
          Kokkos::parallel_for(Kokkos::TeamVectorRange(m, Tn), [&](Index k) {
            const T pk = k <= t ? kx::exp(s(row + k) * scale - L) : T(0);
            p(row + k) = pk;
            dp(row + k) = pk * (dp(row + k) - dl) * scale;
          });
          return;
        }
        // max; exponentials (kept) and their sum; normalise: deterministic team reductions
        T mx;
        Kokkos::parallel_reduce(
            Kokkos::TeamVectorRange(m, t + 1), [&](Index k, T& v) { v = s(row + k) * scale > v ? s(row + k) * scale : v; },
            Kokkos::Max<T>(mx));
        T z;
        Kokkos::parallel_reduce(
            Kokkos::TeamVectorRange(m, t + 1),
            [&](Index k, T& acc) {
              const T e = kx::exp(s(row + k) * scale - mx);
              p(row + k) = e;
              acc += e;
            },
            z);
        Kokkos::single(Kokkos::PerTeam(m), [&] { lse(stat) = mx + kx::log(z); });
        m.team_barrier();  // every exponential written before it is scaled
        const T inv = T(1) / z;
        Kokkos::parallel_for(Kokkos::TeamVectorRange(m, Tn),
                             [&](Index k) { p(row + k) = k <= t ? p(row + k) * inv : T(0); });
      });
}

}  // namespace detail

// qkv[N,3d] (after rotary) -> out[N,d] (heads merged), lse[B·H·T]
template <class T>
void attention_forward(Gemm<T>& gemm, const Matrix<T>& out, const Vector<T>& lse, const Matrix<T>& qkv,
                       AttentionShape s, const AttentionWorkspace<T>& w) {
  const Index Tn = s.seq, hd = s.hd, pairs = s.batch * s.heads, TT = Tn * Tn, Thd = Tn * hd;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  detail::move_heads(qkv, w.q, w.k, w.v, s, true);
  for (Index first = 0; first < pairs; first += w.group) {
    const Index count = std::min(w.group, pairs - first), off = first * Thd;
    gemm.batched('N', 'T', 1, as_matrix(w.q.data() + off, Tn, hd), Thd, as_matrix(w.k.data() + off, Tn, hd), Thd, 0,
                 as_matrix(w.s.data(), Tn, Tn), TT, count);
    detail::softmax_rows(w.s, w.p, w.s, lse, w.delta, first, count, Tn, scale, false);
    gemm.batched('N', 'N', 1, as_matrix(w.p.data(), Tn, Tn), TT, as_matrix(w.v.data() + off, Tn, hd), Thd, 0,
                 as_matrix(w.o.data() + off, Tn, hd), Thd, count);
  }
  detail::move_merged(out, w.o, s, false);
}

// dqkv[N,3d] = ∂L/∂qkv given dout[N,d], the forward's out and lse, and qkv.
// dS = P∘(dP − δ)·scale with dP = dO·Vᵀ and δ_t = dO_t·O_t; dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dO.
template <class T>
void attention_backward(Gemm<T>& gemm, const Matrix<T>& dqkv, const Matrix<T>& dout, const Matrix<T>& out,
                        const Vector<T>& lse, const Matrix<T>& qkv, AttentionShape s, const AttentionWorkspace<T>& w) {
  const Index Tn = s.seq, H = s.heads, hd = s.hd, pairs = s.batch * H, TT = Tn * Tn, Thd = Tn * hd;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  detail::move_heads(qkv, w.q, w.k, w.v, s, true);  // q, k, v of this layer
  detail::move_merged(dout, w.o, s, true);          // o holds dO by heads
  auto delta = w.delta;                             // δ per (b, h, t): one team per token row
  Kokkos::parallel_for(
      "rewarm::attn_delta", Kokkos::TeamPolicy<ExecSpace>(out.extent(0), Kokkos::AUTO),
      KOKKOS_LAMBDA(const detail::Team& m) {
        const Index n = m.league_rank(), b = n / Tn, t = n % Tn;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, H), [&](Index h) {
          T dl = 0;
          Kokkos::parallel_reduce(
              Kokkos::ThreadVectorRange(m, hd), [&](Index j, T& acc) { acc += dout(n, h * hd + j) * out(n, h * hd + j); },
              dl);
          Kokkos::single(Kokkos::PerThread(m), [&] { delta((b * H + h) * Tn + t) = dl; });
        });
      });
  for (Index first = 0; first < pairs; first += w.group) {
    const Index count = std::min(w.group, pairs - first), off = first * Thd;
    auto head = [&](const View1<T>& x) { return as_matrix(x.data() + off, Tn, hd); };
    const auto S = as_matrix(w.s.data(), Tn, Tn), P = as_matrix(w.p.data(), Tn, Tn);
    gemm.batched('N', 'T', 1, head(w.q), Thd, head(w.k), Thd, 0, S, TT, count);   // S = Q·Kᵀ
    gemm.batched('N', 'T', 1, head(w.o), Thd, head(w.v), Thd, 0, P, TT, count);   // p buffer: dP = dO·Vᵀ
    // P into the s buffer, dS over dP in the p buffer
    detail::softmax_rows(w.s, w.s, w.p, lse, w.delta, first, count, Tn, scale, true);
    gemm.batched('T', 'N', 1, S, TT, head(w.o), Thd, 0, head(w.dv), Thd, count);  // dV = Pᵀ·dO
    gemm.batched('N', 'N', 1, P, TT, head(w.k), Thd, 0, head(w.dq), Thd, count);  // dQ = dS·K
    gemm.batched('T', 'N', 1, P, TT, head(w.q), Thd, 0, head(w.dk), Thd, count);  // dK = dSᵀ·Q
  }
  detail::move_heads(dqkv, w.dq, w.dk, w.dv, s, false);
}

}  // namespace rewarm::layers
