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

EvalBatches eval_batches(Index rows, Index B, const Comm& comm, bool same_passes) {
  const Index K = (rows + B - 1) / B, N = comm.size(), r = comm.rank();
  const Index first = r * K / N, count = (r + 1) * K / N - first;
  return {first, count, same_passes ? -Index(comm.min(-int(count))) : count};
}

double Evaluation::loss(std::size_t i, Gpt<float>& model, DeviceBatch& batch, const Comm& comm, bool same_passes) {
  const auto& shard = *shards_.at(i);
  const Index T = seq_len_, B = micro_batch_;
  const Index windows = shard.num_windows(T);
  const Index n = sets_[i].max_sequences > 0 ? std::min(windows, sets_[i].max_sequences) : windows;
  const auto mine = eval_batches(n, B, comm, same_passes);
  std::vector<double> window_loss(std::size_t(n), 0.0);  // zero but this rank's windows
  auto h_token_loss = Kokkos::create_mirror_view(model.token_losses());
  comm.agree([&] {
    for (Index k = 0; k < mine.passes; ++k) {  // passes past this rank's batches repeat one, counting none
      const Index first = std::max<Index>(mine.first + std::min(k, mine.count - 1), 0) * B;
      const Index rows = k < mine.count ? std::min(B, n - first) : 0;
      for (Index j = 0; j < B; ++j) {  // the last batch repeats the set's last window
        shard.read_window(std::min(first + j, n - 1), T, vocab_, window_.data());
        batch.stage(j, window_.data());
      }
      batch.upload();
      model.loss(batch.ids(), batch.targets(), rows * T);
      Kokkos::deep_copy(h_token_loss, model.token_losses());
      for (Index j = 0; j < rows; ++j) {
        double sum = 0;
        for (Index t = 0; t < T; ++t) sum += h_token_loss(j * T + t);
        window_loss[std::size_t(first + j)] = sum;
      }
    }
  });
  // each window's sum comes from one rank: the sum over ranks is an exact copy of it
  comm.sum(window_loss);
  double total = 0;
  for (const double x : window_loss) total += x;
  return total / double(n * T);
}

}  // namespace rewarm
