// The training sample stream over one or more token shards mixed by weight. Sample k goes to
// the set whose share is furthest behind its weight (Megatron's blended-dataset rule:
// argmax_i w_i·(k+1) − c_i, ties to the first set), so every prefix of the stream matches the
// weights as closely as integers allow; within a set, windows follow that set's sampler.
// Replay of upstream data is a small weight on the upstream set. The state is the per-set
// counts c_i, saved in checkpoints for an exact resume, and the counts o_i at which the weights
// took effect: a continuation with new weights follows them from its first sample on
// (argmax_i w_i·(k' + 1) − (c_i − o_i), k' = Σ(c_i − o_i)) rather than catching up on the whole
// stream, while each set goes on with its own window order.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/data_set.hpp"
#include "data/sampler.hpp"
#include "data/token_shard.hpp"

namespace rewarm {

class Mixture {
 public:
  Mixture(const std::vector<DataSet>& sets, Index seq_len, bool shuffle, std::uint64_t seed, Index model_vocab);
  // Which window of which set a sample reads.
  struct Draw {
    std::size_t set;
    Index window;
  };
  // The next sample of the stream; advances the counts. Cheap: every rank of a data-parallel
  // job draws every sample of a step and reads only its own.
  Draw draw();
  // Reads a drawn sample (seq_len + 1 tokens).
  void read(const Draw& d, std::int32_t* out) const;
  void next(std::int32_t* out) { read(draw(), out); }
  const std::vector<Index>& counts() const { return counts_; }
  const std::vector<Index>& origin() const { return origin_; }
  // Restores a checkpointed position; `origin` empty: zeros.
  void set_counts(const std::vector<Index>& counts, const std::vector<Index>& origin = {});
  // Each set's weight normalised to sum 1: what the stream follows.
  static std::vector<double> shares(const std::vector<DataSet>& sets);
  // Set that the next sample comes from (pure function of the counts).
  std::size_t next_set() const;

 private:
  std::vector<std::unique_ptr<TokenShard>> shards_;
  std::vector<WindowSampler> samplers_;
  std::vector<double> weights_;  // normalised to sum 1
  std::vector<Index> counts_, origin_;
  Index seq_len_, vocab_;
};

}  // namespace rewarm
