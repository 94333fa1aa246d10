// ZeRO-2's gradient sum ([parallel] zero >= 2). Each micro-batch's gradients are summed over
// the ranks range by range as the backward pass finishes them (ParamLayout::gradient_buckets),
// in double, straight into the slice of the step's sum that this rank updates: no rank holds
// the whole sum (8 bytes per parameter over the ranks, where ZeRO-1 keeps 8 per parameter on
// each), only a double copy of one range on its way.
//
// The sum is Σ over micro-batches of (Σ over ranks), where zero <= 1 sums over micro-batches
// first: the same double sums of the same floats, so the same float gradient (bitwise, as
// data parallelism over rank counts is).
#pragma once
#include "parallel/collectives.hpp"

namespace rewarm {

class SlicedGradientSum {
 public:
  // largest_range: the longest [begin, end) that add() is given.
  SlicedGradientSum(const Slices& slices, int rank, Index largest_range);
  // What the constructor allocates (the trainer's memory estimate).
  static std::size_t memory_bytes(const Slices& slices, int rank, Index largest_range);
  // sum() += Σ over ranks of the gradients of flat elements [begin, end), which `range` holds
  // (=, on the first micro-batch of a step). Every rank calls it with the same ranges in the same
  // order.
  void add(Collectives& collectives, const float* range, Index begin, Index end, bool first);
  // This rank's slice of the step's gradient sum (slices.count[rank] doubles).
  const View1<double>& sum() const { return slice_; }

 private:
  Slices slices_;
  int rank_;
  View1<double> slice_, send_, recv_;  // recv_: this rank's part of one range
};

}  // namespace rewarm
