// Token embedding lookup (no position embedding in GPT-NeoX) and its gradient.
#pragma once
#include <algorithm>
#include <numeric>

#include "model/layers/elementwise.hpp"

namespace rewarm::layers {

// The rows of a batch that hold each token id: `count` distinct ids, and for the k-th the
// positions order[start[k] .. start[k+1]) in increasing order. Built on the host from the
// batch's ids, so the embedding gradient sums each id's rows in a fixed order with no atomics.
struct TokenRows {
  View1<std::int32_t> ids, start, order;
  Index count = 0;

  TokenRows() = default;  // allocates nothing
  explicit TokenRows(Index n)
      : ids("rewarm::token_ids", n), start("rewarm::token_start", n + 1), order("rewarm::token_order", n) {}

  void build(const View1<std::int32_t>& batch_ids) {
    const auto h = host_copy(batch_ids);
    const Index n = h.extent(0);
    std::vector<std::int32_t> pos(std::size_t(n), 0);
    std::iota(pos.begin(), pos.end(), 0);
    std::stable_sort(pos.begin(), pos.end(), [&](std::int32_t a, std::int32_t b) { return h(a) < h(b); });
    auto hi = Kokkos::create_mirror_view(ids), hs = Kokkos::create_mirror_view(start),
         ho = Kokkos::create_mirror_view(order);
    count = 0;
    for (Index i = 0; i < n; ++i) {
      ho(i) = pos[std::size_t(i)];
      if (i == 0 || h(pos[std::size_t(i)]) != h(pos[std::size_t(i - 1)])) hi(count) = h(pos[std::size_t(i)]), hs(count++) = std::int32_t(i);
    }
    hs(count) = std::int32_t(n);
    Kokkos::deep_copy(ExecSpace(), ids, hi);
    Kokkos::deep_copy(ExecSpace(), start, hs);
    Kokkos::deep_copy(ExecSpace(), order, ho);
    kx::fence("rewarm::token_rows");  // the host mirrors go out of scope
  }
};

// out[N,d] = E[ids[n], :]
template <class T>
void embedding_forward(const Matrix<T>& out, const View1<int32_t>& ids, const Matrix<T>& E) {
  Kokkos::parallel_for(
      "rewarm::embedding_fwd", Range2({0, 0}, {Index(out.extent(0)), Index(E.extent(1))}),
      KOKKOS_LAMBDA(Index n, Index j) { out(n, j) = E(ids(n), j); });
}

// dE[id, :] += Σ dout[n, :] over the rows n holding id: one team per distinct id.
template <class T>
void embedding_backward(const Matrix<T>& dE, const TokenRows& rows, const Matrix<T>& dout) {
  const Index d = dE.extent(1);
  const auto ids = rows.ids, start = rows.start, order = rows.order;
  Kokkos::parallel_for(
      "rewarm::embedding_bwd", TeamPolicy(rows.count, Kokkos::AUTO), KOKKOS_LAMBDA(const Team& m) {
        const Index k = m.league_rank(), id = ids(k), a = start(k), b = start(k + 1);
        Kokkos::parallel_for(Kokkos::TeamVectorRange(m, d), [&](Index j) {
          T s = 0;
          for (Index i = a; i < b; ++i) s += dout(order(i), j);
          dE(id, j) += s;
        });
      });
}

}  // namespace rewarm::layers
