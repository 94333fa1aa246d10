#include "parallel/sliced_gradients.hpp"

#include <algorithm>

namespace rewarm {

namespace {
// The largest part of any range of at most `largest` elements that falls in this rank's slice.
Index largest_part(const Slices& s, int rank, Index largest) { return std::min(largest, s.count[std::size_t(rank)]); }
}  // namespace

SlicedGradientSum::SlicedGradientSum(const Slices& slices, int rank, Index largest_range)
    : slices_(slices),
      rank_(rank),
      slice_("rewarm::grad_slice", slices.count[std::size_t(rank)]),
      send_(Kokkos::view_alloc(std::string("rewarm::grad_range"), Kokkos::WithoutInitializing), largest_range),
      recv_(Kokkos::view_alloc(std::string("rewarm::grad_range_part"), Kokkos::WithoutInitializing),
            largest_part(slices, rank, largest_range)) {}

std::size_t SlicedGradientSum::memory_bytes(const Slices& slices, int rank, Index largest_range) {
  return allocation_bytes(slices.count[std::size_t(rank)], 8) + allocation_bytes(largest_range, 8) +
         allocation_bytes(largest_part(slices, rank, largest_range), 8);
}

void SlicedGradientSum::add(Collectives& collectives, const float* range, Index begin, Index end, bool first) {
  const Slices part = slices_.within(begin, end);
  const Index n = end - begin, mine = part.count[std::size_t(rank_)];
  const auto send = Kokkos::subview(send_, std::make_pair(Index(0), n));
  const auto recv = Kokkos::subview(recv_, std::make_pair(Index(0), mine));
  Kokkos::parallel_for(
      "rewarm::grad_to_double", Range(0, n), KOKKOS_LAMBDA(Index i) { send(i) = double(range[i]); });
  collectives.reduce_scatter_sum(send, recv, part);
  if (mine == 0) return;
  // where this rank's part of the range sits in its slice
  const Index at = begin + part.offset[std::size_t(rank_)] - slices_.offset[std::size_t(rank_)];
  const auto slice = slice_;
  Kokkos::parallel_for(
      "rewarm::grad_slice_accumulate", Range(0, mine),
      KOKKOS_LAMBDA(Index i) { slice(at + i) = first ? recv(i) : slice(at + i) + recv(i); });
}

}  // namespace rewarm
