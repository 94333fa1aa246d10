// Token embedding lookup (no position embedding in GPT-NeoX) and its gradient.
#pragma once
#include <algorithm>
#include <numeric>
#include <utility>
#include <vector>

#include "model/layers/elementwise.hpp"

namespace rewarm::layers {

// The rows of a batch that hold each token id: `count` distinct ids, and for the k-th the
// positions order[start[k] .. start[k+1]) in increasing order. Built on the host from the
// batch's ids, so the embedding gradient sums each id's rows in a fixed order with no atomics.
struct TokenRows {
  using HostMirror = decltype(Kokkos::create_mirror_view(PinnedSpace(), std::declval<View1<std::int32_t>>()));
  View1<std::int32_t> ids, start, order;
  HostMirror h_ids, h_start, h_order;  // the same views where the device's memory is the host's
  Index count = 0;

  TokenRows() = default;  // allocates nothing
  explicit TokenRows(Index n)
      : ids("rewarm::token_ids", n),
        start("rewarm::token_start", n + 1),
        order("rewarm::token_order", n),
        h_ids(Kokkos::create_mirror_view(PinnedSpace(), ids)),
        h_start(Kokkos::create_mirror_view(PinnedSpace(), start)),
        h_order(Kokkos::create_mirror_view(PinnedSpace(), order)) {}

  // From the batch's ids in host memory (order.extent(0) of them). The uploads are queued, not
  // waited for: the next build comes after Gpt::forward_backward has read its loss, when they are done.
  void build(const std::int32_t* batch_ids) {
    const Index n = order.extent(0);
    std::vector<std::int32_t> pos(std::size_t(n), 0);
    std::iota(pos.begin(), pos.end(), 0);
    std::stable_sort(pos.begin(), pos.end(), [&](std::int32_t a, std::int32_t b) { return batch_ids[a] < batch_ids[b]; });
    count = 0;
    for (Index i = 0; i < n; ++i) {
      const std::int32_t id = batch_ids[pos[std::size_t(i)]];
      h_order(i) = pos[std::size_t(i)];
      if (i == 0 || id != batch_ids[pos[std::size_t(i - 1)]]) h_ids(count) = id, h_start(count++) = std::int32_t(i);
    }
    h_start(count) = std::int32_t(n);
    Kokkos::deep_copy(ExecSpace(), ids, h_ids);
    Kokkos::deep_copy(ExecSpace(), start, h_start);
    Kokkos::deep_copy(ExecSpace(), order, h_order);
  }
};

// out[N,d] = E[ids[n], :]
template <class T>
void embedding_forward(const Matrix<T>& out, const View1<int32_t>& ids, const Matrix<T>& E) {
  for_each_element(
      "rewarm::embedding_fwd", rows_cols(out.extent(0), E.extent(1)),
      KOKKOS_LAMBDA(Index n, Index j) { out(n, j) = E(ids(n), j); });
}

// dE[id, :] += Σ dout[n, :] over the rows n holding id: one team per distinct id.
template <class T>
void embedding_backward(const Matrix<T>& dE, const TokenRows& rows, const Matrix<T>& dout) {
  const Index d = dE.extent(1);
  const auto ids = rows.ids, start = rows.start, order = rows.order;
  Kokkos::parallel_for(
      "rewarm::embedding_bwd", team_policy(rows.count), KOKKOS_LAMBDA(const Team& m) {
        const Index k = m.league_rank(), id = ids(k), a = start(k), b = start(k + 1);
        Kokkos::parallel_for(Kokkos::TeamVectorRange(m, d), [&](Index j) {
          T s = 0;
          for (Index i = a; i < b; ++i) s += dout(order(i), j);
          dE(id, j) += s;
        });
      });
}

}  // namespace rewarm::layers
