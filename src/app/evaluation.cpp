#include "app/evaluation.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace rewarm {

Evaluation::Evaluation(const RunConfig& cfg)
    : seq_len_(cfg.data.seq_len),
      micro_batch_(cfg.data.micro_batch),
      vocab_(cfg.model.vocab_size),
      sets_(cfg.data.eval),
      window_(std::size_t(cfg.data.seq_len + 1)) {
  const Index T = seq_len_;
  for (std::size_t i = 0; i < sets_.size(); ++i) {
    const auto& set = sets_[i];
    const std::string role = "data.eval[" + std::to_string(i) + "]";
    shards_.push_back(std::make_unique<TokenShard>(set.path));
    const auto& shard = *shards_.back();
    shard.require(T, vocab_, role);
    if (set.max_sequences > shard.num_windows(T))
      fail(set.path, role + ".max_sequences = " + std::to_string(set.max_sequences) + " but the shard has only " +
                         std::to_string(shard.num_windows(T)) + " windows at seq_len " + std::to_string(T));
  }
}

double Evaluation::loss(std::size_t i, Gpt<float>& model, DeviceBatch& batch, const Comm& comm, bool same_passes) {
  const auto& shard = *shards_.at(i);
  const Index T = seq_len_, B = micro_batch_, N = comm.size(), r = comm.rank();
  const Index windows = shard.num_windows(T);
  const Index n = sets_[i].max_sequences > 0 ? std::min(windows, sets_[i].max_sequences) : windows;
  const Index begin = r * n / N, end = (r + 1) * n / N;
  double total = 0;
  const Index batches = (end - begin + B - 1) / B;
  const Index passes = same_passes ? -Index(comm.min(-int(batches))) : batches;
  comm.agree([&] {
    for (Index k = 0; k < passes; ++k) {
      const Index first = begin + std::min(k, batches - 1) * B;
      const Index rows = k < batches ? std::min(B, end - first) : 0;
      for (Index j = 0; j < B; ++j) {  // a short last batch repeats its last window; only `rows` count
        shard.read_window(std::max<Index>(std::min(first + j, end - 1), 0), T, vocab_, window_.data());
        batch.stage(j, window_.data());
      }
      batch.upload();
      total += model.loss(batch.ids(), batch.targets(), rows * T);
    }
  });
  return comm.sum(total) / double(n * T);
}

}  // namespace rewarm
