// Validation loss over the ranks: each [[data.eval]] set's first max_sequences windows (all
// when 0), in order, in batches of micro_batch split over the ranks by eval_batches (the last
// one padded with the last window, counting none of it). So every window is computed in the
// same batch at the same place on any rank count (a multi-threaded BLAS rounds a row by its
// place in the product). Each
// window's token losses are summed in double in position order, every rank gets every window's
// sum, and the sums are added in window order: the same mean loss to the bit on any rank count.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "app/device_batch.hpp"
#include "app/run_config.hpp"
#include "data/token_shard.hpp"
#include "model/gpt.hpp"
#include "parallel/comm.hpp"

namespace rewarm {

// The batches of B rows that this rank evaluates out of a set's `rows`: batch k holds rows
// [k·B, k·B + B) and rank r takes batches [first, first + count) = [r·K/N, (r+1)·K/N) of the
// K = ⌈rows/B⌉, fixed by the set, not by the ranks. passes: the forward passes it makes (with
// same_passes, as many as the rank with the most batches: every pass is then a collective).
struct EvalBatches {
  Index first, count, passes;
};
EvalBatches eval_batches(Index rows, Index B, const Comm& comm, bool same_passes);

class Evaluation {
 public:
  // Opens and checks every [[data.eval]] set of `cfg` (its windows at seq_len, its token ids
  // against the model's vocabulary); one line naming the set and its file if one does not fit.
  explicit Evaluation(const RunConfig& cfg);
  std::size_t size() const { return sets_.size(); }
  const std::string& name(std::size_t i) const { return sets_.at(i).name; }
  // Mean loss per token of set i. Every rank calls it. With same_passes (every forward pass is a
  // collective: DataParallel::collective_passes) every rank makes as many passes: one with fewer
  // windows computes its last batch again, counting none of it.
  double loss(std::size_t i, Gpt<float>& model, DeviceBatch& batch, const Comm& comm, bool same_passes);

 private:
  Index seq_len_, micro_batch_, vocab_;
  std::vector<DataSet> sets_;
  std::vector<std::unique_ptr<TokenShard>> shards_;  // one per set, opened once
  std::vector<std::int32_t> window_;
};

}  // namespace rewarm
