// Causal multi-head attention over groups of (batch, head) pairs: the score products are
// strided-batched GEMMs over a group, the masked softmax one team per score row. The group is as
// large as the workspace budget allows (all pairs at once when it fits), so the launches per
// layer do not grow with batch or head count. The backward pass recomputes the probabilities
// from the saved log-sum-exp; scores live only in the workspace, never across layers.
//
// Causal skipping: the scores are computed in row tiles (ScoreTiles), each only as wide as the
// mask lets it see, so score tiles wholly above the diagonal are neither computed, stored nor
// read. With one tile (tile = T) this is the plain full T×T computation.
#pragma once
#include <algorithm>
#include <cmath>

#include "core/gemm.hpp"
#include "core/launch.hpp"

namespace rewarm::layers {

struct AttentionShape {
  Index batch, seq, heads, hd;
};

// The causal scores of one (batch, head) pair as row tiles: tile i holds rows [i·tile,
// i·tile + rows(i)) and the columns [0, cols(i)) that the mask leaves some row of it,
// cols(i) = min(T, (i+1)·tile), row-major and contiguous, tile after tile. Of the T×T work,
// about (blocks + 1)/(2·blocks) remains (56% with 8 tiles).
struct ScoreTiles {
  Index seq = 1, tile = 1, blocks = 1;
  ScoreTiles() = default;
  ScoreTiles(Index seq_len, Index tile_rows)
      : seq(seq_len),
        tile(std::clamp<Index>(tile_rows, 1, std::max<Index>(seq_len, 1))),
        blocks((seq_len + tile - 1) / tile) {}
  // Up to 8 tiles of at least 256 rows. Finer tiles skip more of the masked work but make more,
  // smaller GEMMs: on a CPU core, 2 tiles at T = 256 (128 rows) were 4% slower per GPT-2-small
  // step than one, and 8 × 256 at T = 2048 13% faster (bench/RESULTS.md).
  static Index auto_tile(Index seq_len) {
    const Index n = std::clamp<Index>((seq_len + 255) / 256, 1, 8);
    return (seq_len + n - 1) / n;
  }
  KOKKOS_INLINE_FUNCTION Index rows(Index i) const { return i + 1 < blocks ? tile : seq - i * tile; }
  KOKKOS_INLINE_FUNCTION Index cols(Index i) const { return i + 1 < blocks ? (i + 1) * tile : seq; }
  KOKKOS_INLINE_FUNCTION Index offset(Index i) const {
    return tile * tile * (i * (i + 1) / 2);
  }  // earlier tiles are full
  KOKKOS_INLINE_FUNCTION Index per_pair() const { return offset(blocks - 1) + rows(blocks - 1) * seq; }
  // Where score row t starts within its pair's tiles, and how many scores it holds.
  KOKKOS_INLINE_FUNCTION Index row_start(Index t) const {
    const Index i = t / tile;
    return offset(i) + (t - i * tile) * cols(i);
  }
  KOKKOS_INLINE_FUNCTION Index row_length(Index t) const { return cols(t / tile); }
};

// Heads split out of qkv ([B·H, T, hd] each, head-major), their gradients, and the score
// workspace of one group: two buffers of ScoreTiles::per_pair() scores per pair. With bf16
// GEMMs the softmax also writes the probabilities P and their gradient dS once, in bf16, for the
// GEMMs that read them (p16, ds16): on GPUs buffers of their own; in the host emulation, where
// bf16 values are floats, in place over the scores (p16 over s, ds16 over p).
template <class T>
struct AttentionWorkspace {
  Index group = 1;  // (batch, head) pairs per batched GEMM
  ScoreTiles tiles;
  bool bf16 = false;
  View1<T> q, k, v, o, dq, dk, dv, s, p, delta;
  View1<Bf16Storage> p16, ds16;
  AttentionWorkspace() = default;
  static constexpr bool kBf16InPlace = std::is_same_v<Bf16Storage, T>;
  // Score bytes per (batch, head) pair.
  static std::size_t pair_bytes(const ScoreTiles& tiles, bool bf16) {
    const auto n = std::size_t(tiles.per_pair());
    return 2 * sizeof(T) * n + (bf16 && !kBf16InPlace ? 2 * sizeof(Bf16Storage) * n : 0);
  }
  // budget_bytes bounds the score buffers (at least one pair is always allowed).
  static Index group_for(AttentionShape a, std::size_t budget_bytes, const ScoreTiles& tiles, bool bf16) {
    return std::clamp<Index>(Index(budget_bytes / pair_bytes(tiles, bf16)), 1, a.batch * a.heads);
  }
  // tile_rows 0: ScoreTiles::auto_tile. bf16: the GEMMs compute in bf16.
  AttentionWorkspace(AttentionShape a, std::size_t budget_bytes, Index tile_rows = 0, bool bf16_gemm = false)
      : tiles(a.seq, tile_rows > 0 ? tile_rows : ScoreTiles::auto_tile(a.seq)), bf16(bf16_gemm) {
    const Index pairs = a.batch * a.heads, n = pairs * a.seq * a.hd, scores = tiles.per_pair();
    group = group_for(a, budget_bytes, tiles, bf16);
    auto buf = [](const char* name, Index len) {
      return View1<T>(Kokkos::view_alloc(std::string(name), Kokkos::WithoutInitializing), len);
    };
    q = buf("rewarm::attn_q", n), k = buf("rewarm::attn_k", n), v = buf("rewarm::attn_v", n);
    o = buf("rewarm::attn_o", n), dq = buf("rewarm::attn_dq", n), dk = buf("rewarm::attn_dk", n);
    dv = buf("rewarm::attn_dv", n);
    s = buf("rewarm::attn_s", group * scores), p = buf("rewarm::attn_p", group * scores);
    delta = buf("rewarm::attn_delta", pairs * a.seq);
    if (!bf16) return;
    if constexpr (kBf16InPlace) {
      p16 = s, ds16 = p;
    } else {
      auto buf16 = [](const char* name, Index len) {
        return View1<Bf16Storage>(Kokkos::view_alloc(std::string(name), Kokkos::WithoutInitializing), len);
      };
      p16 = buf16("rewarm::attn_p_bf16", group * scores), ds16 = buf16("rewarm::attn_ds_bf16", group * scores);
    }
  }
};

namespace detail {

// Moves between qkv[N, 3d] (per head [q|k|v]) and head-major [B·H, T, hd] buffers: a thread per
// (token row, head column), adjacent threads on adjacent columns of one head on both sides.
// to_heads: qkv → (q, k, v); otherwise (q, k, v) → qkv (their gradients).
template <class T>
void move_heads(const Matrix<T>& qkv, const View1<T>& q, const View1<T>& k, const View1<T>& v, AttentionShape s,
                bool to_heads) {
  const Index Tn = s.seq, H = s.heads, hd = s.hd;
  for_each_element(
      "rewarm::attn_move_heads", rows_cols(qkv.extent(0), H * hd), KOKKOS_LAMBDA(Index n, Index col) {
        const Index h = col / hd, j = col - h * hd, b = n / Tn, t = n - b * Tn;
        const Index x = ((b * H + h) * Tn + t) * hd + j, c = h * 3 * hd + j;
        if (to_heads) {
          q(x) = qkv(n, c), k(x) = qkv(n, c + hd), v(x) = qkv(n, c + 2 * hd);
        } else {
          qkv(n, c) = q(x), qkv(n, c + hd) = k(x), qkv(n, c + 2 * hd) = v(x);
        }
      });
}

// out[N, d] ↔ o [B·H, T, hd], a thread per element; to_heads moves out into o.
template <class T>
void move_merged(const Matrix<T>& out, const View1<T>& o, AttentionShape s, bool to_heads) {
  const Index Tn = s.seq, H = s.heads, hd = s.hd;
  for_each_element(
      "rewarm::attn_move_merged", rows_cols(out.extent(0), H * hd), KOKKOS_LAMBDA(Index n, Index col) {
        const Index h = col / hd, j = col - h * hd, b = n / Tn, t = n - b * Tn;
        const Index x = ((b * H + h) * Tn + t) * hd + j;
        if (to_heads)
          o(x) = out(n, col);
        else
          out(n, col) = o(x);
      });
}

// One team per score row of the group starting at pair `first`: row t of pair g holds
// S = Q·Kᵀ over its tile's columns. Forward: P = causal softmax(scale·S) (zeros past the
// diagonal to the tile's edge) into p, or with w.bf16 once in bf16 into w.p16, and lse = its
// log-sum-exp. Backward (p holds dP = dO·Vᵀ): P = exp(scale·S − lse), recomputed, into s and
// dS = P∘(dP − δ)·scale over p, or with w.bf16 into w.p16 and w.ds16.
template <class T>
void softmax_rows(const AttentionWorkspace<T>& w, const Vector<T>& lse, Index first, Index count, T scale,
                  bool backward) {
  const auto s = w.s, p = w.p, delta = w.delta;
  const auto p16 = w.p16, ds16 = w.ds16;
  const bool bf16 = w.bf16;
  const ScoreTiles tiles = w.tiles;
  const Index Tn = tiles.seq, pp = tiles.per_pair();
  Kokkos::parallel_for(
      backward ? "rewarm::attn_softmax_bwd" : "rewarm::attn_softmax_fwd",
      team_policy(count * Tn), KOKKOS_LAMBDA(const Team& m) {
        const Index r = m.league_rank(), t = r % Tn, stat = first * Tn + r;
        const Index row = (r / Tn) * pp + tiles.row_start(t), len = tiles.row_length(t);
        if (backward) {  // one exponential per score: P from the saved log-sum-exp, then dS
          const T L = lse(stat), dl = delta(stat);
          Kokkos::parallel_for(Kokkos::TeamVectorRange(m, len), [&](Index k) {
            const T pk = k <= t ? kx::exp(s(row + k) * scale - L) : T(0), dsk = pk * (p(row + k) - dl) * scale;
            if (bf16) {
              p16(row + k) = to_bf16_storage(float(pk)), ds16(row + k) = to_bf16_storage(float(dsk));
            } else {
              s(row + k) = pk, p(row + k) = dsk;
            }
          });
          return;
        }
        // max; exponentials and their sum; normalise: deterministic team reductions
        T mx;
        Kokkos::parallel_reduce(
            Kokkos::TeamVectorRange(m, t + 1),
            [&](Index k, T& v) { v = s(row + k) * scale > v ? s(row + k) * scale : v; }, Kokkos::Max<T>(mx));
        T z;
        Kokkos::parallel_reduce(
            Kokkos::TeamVectorRange(m, t + 1),
            [&](Index k, T& acc) {
              const T e = kx::exp(s(row + k) * scale - mx);
              if (!bf16) p(row + k) = e;  // bf16: recomputed below, the same value, never stored in fp32
              acc += e;
            },
            z);
        Kokkos::single(Kokkos::PerTeam(m), [&] { lse(stat) = mx + kx::log(z); });
        m.team_barrier();  // every exponential written before it is scaled
        const T inv = T(1) / z;
        Kokkos::parallel_for(Kokkos::TeamVectorRange(m, len), [&](Index k) {
          if (bf16)
            p16(row + k) = to_bf16_storage(k <= t ? float(kx::exp(s(row + k) * scale - mx) * inv) : 0.0f);
          else
            p(row + k) = k <= t ? p(row + k) * inv : T(0);
        });
      });
}

// Tile i of every pair of a group of `count`: its scores (rows(i) × cols(i), pair stride
// per_pair()) and the head rows it covers ([B·H, T, hd] buffers, pair stride T·hd) or sees (rows
// [0, cols(i))). Each is the group's first pair, checked to hold the whole group (batch_matrix).
template <class T>
struct TileOperands {
  const ScoreTiles& tiles;
  Index off, hd, count;  // the group's first element in the head buffers, its pairs
  template <class U>
  Matrix<U> scores(const View1<U>& x, Index i) const {
    return batch_matrix(x, tiles.offset(i), tiles.rows(i), tiles.cols(i), tiles.per_pair(), count);
  }
  Matrix<T> rows(const View1<T>& x, Index i) const {
    return batch_matrix(x, off + i * tiles.tile * hd, tiles.rows(i), hd, tiles.seq * hd, count);
  }
  Matrix<T> seen(const View1<T>& x, Index i) const {
    return batch_matrix(x, off, tiles.cols(i), hd, tiles.seq * hd, count);
  }
};

// C_i = op(P_i)·B over tile i's probabilities (or their gradient): stored in bf16 by the
// softmax when the GEMMs compute in bf16, in T otherwise.
template <class T>
void probability_gemm(Gemm<T>& gemm, const AttentionWorkspace<T>& w, const TileOperands<T>& x, const View1<T>& probs,
                      const View1<Bf16Storage>& probs16, Index i, char ta, const Matrix<T>& B, T beta,
                      const Matrix<T>& C, Index count) {
  const Index pp = w.tiles.per_pair(), Thd = w.tiles.seq * x.hd;
  if (w.bf16)
    gemm.batched(ta, 'N', 1, Bf16Matrix{x.scores(probs16, i)}, pp, B, Thd, beta, C, Thd, count);
  else
    gemm.batched(ta, 'N', 1, x.scores(probs, i), pp, B, Thd, beta, C, Thd, count);
}
}  // namespace detail

// qkv[N,3d] (after rotary) -> out[N,d] (heads merged), lse[B·H·T]
template <class T>
void attention_forward(Gemm<T>& gemm, const Matrix<T>& out, const Vector<T>& lse, const Matrix<T>& qkv,
                       AttentionShape s, const AttentionWorkspace<T>& w) {
  const Index pairs = s.batch * s.heads, Thd = s.seq * s.hd, pp = w.tiles.per_pair(), nb = w.tiles.blocks;
  const T scale = T(1.0 / std::sqrt(double(s.hd)));
  detail::move_heads(qkv, w.q, w.k, w.v, s, true);
  for (Index first = 0; first < pairs; first += w.group) {
    const Index count = std::min(w.group, pairs - first);
    const detail::TileOperands<T> x{w.tiles, first * Thd, s.hd, count};
    for (Index i = 0; i < nb; ++i)  // S_i = Q_i·K_{<cols(i)}ᵀ
      gemm.batched('N', 'T', 1, x.rows(w.q, i), Thd, x.seen(w.k, i), Thd, 0, x.scores(w.s, i), pp, count);
    detail::softmax_rows(w, lse, first, count, scale, false);
    for (Index i = 0; i < nb; ++i)  // O_i = P_i·V_{<cols(i)}
      detail::probability_gemm(gemm, w, x, w.p, w.p16, i, 'N', x.seen(w.v, i), T(0), x.rows(w.o, i), count);
  }
  detail::move_merged(out, w.o, s, false);
}

// dqkv[N,3d] = ∂L/∂qkv given dout[N,d], the forward's out and lse, and qkv.
// dS = P∘(dP − δ)·scale with dP = dO·Vᵀ and δ_t = dO_t·O_t; dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dO.
// dV and dK sum over the tiles, the last (which covers every row) first with β = 0.
template <class T>
void attention_backward(Gemm<T>& gemm, const Matrix<T>& dqkv, const Matrix<T>& dout, const Matrix<T>& out,
                        const Vector<T>& lse, const Matrix<T>& qkv, AttentionShape s, const AttentionWorkspace<T>& w) {
  const Index Tn = s.seq, H = s.heads, hd = s.hd, pairs = s.batch * H, Thd = Tn * hd, pp = w.tiles.per_pair(),
              nb = w.tiles.blocks;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  detail::move_heads(qkv, w.q, w.k, w.v, s, true);  // q, k, v of this layer
  detail::move_merged(dout, w.o, s, true);          // o holds dO by heads
  auto delta = w.delta;  // δ per (b, h, t): a team per token row, a thread (a warp on GPUs) per head
  Kokkos::parallel_for(
      "rewarm::attn_delta", team_policy(out.extent(0), 32), KOKKOS_LAMBDA(const Team& m) {
        const Index n = m.league_rank(), b = n / Tn, t = n % Tn;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, H), [&](Index h) {
          T dl = 0;
          Kokkos::parallel_reduce(
              Kokkos::ThreadVectorRange(m, hd),
              [&](Index j, T& acc) { acc += dout(n, h * hd + j) * out(n, h * hd + j); }, dl);
          Kokkos::single(Kokkos::PerThread(m), [&] { delta((b * H + h) * Tn + t) = dl; });
        });
      });
  for (Index first = 0; first < pairs; first += w.group) {
    const Index count = std::min(w.group, pairs - first);
    const detail::TileOperands<T> x{w.tiles, first * Thd, hd, count};
    for (Index i = 0; i < nb; ++i) {
      gemm.batched('N', 'T', 1, x.rows(w.q, i), Thd, x.seen(w.k, i), Thd, 0, x.scores(w.s, i), pp, count);  // S
      gemm.batched('N', 'T', 1, x.rows(w.o, i), Thd, x.seen(w.v, i), Thd, 0, x.scores(w.p, i), pp, count);  // dP
    }
    detail::softmax_rows(w, lse, first, count, scale, true);  // P into s (or p16), dS over dP (or into ds16)
    for (Index i = nb - 1; i >= 0; --i) {  // dV = Pᵀ·dO, dK = dSᵀ·Q: column sums over the tiles
      const T beta = i == nb - 1 ? 0 : 1;
      detail::probability_gemm(gemm, w, x, w.s, w.p16, i, 'T', x.rows(w.o, i), beta, x.seen(w.dv, i), count);
      detail::probability_gemm(gemm, w, x, w.p, w.ds16, i, 'T', x.rows(w.q, i), beta, x.seen(w.dk, i), count);
    }
    for (Index i = 0; i < nb; ++i)  // dQ = dS·K
      detail::probability_gemm(gemm, w, x, w.p, w.ds16, i, 'N', x.seen(w.k, i), T(0), x.rows(w.dq, i), count);
  }
  detail::move_heads(dqkv, w.dq, w.dk, w.dv, s, false);
}

}  // namespace rewarm::layers
