// Token shards (docs/formats.md): /tokens, documents concatenated; window k is tokens
// [k·seq_len, k·seq_len + seq_len + 1).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace rewarm {
namespace h5 {
class File;
class RangeReader;
}  // namespace h5

class TokenShard {
 public:
  explicit TokenShard(const std::string& path);
  ~TokenShard();
  const std::string& path() const { return path_; }
  Index num_tokens() const { return num_tokens_; }
  Index vocab_size() const { return vocab_size_; }
  Index num_windows(Index seq_len) const { return num_tokens_ > 0 ? (num_tokens_ - 1) / seq_len : 0; }
  // Fails naming the file (and `role`, e.g. "data.eval[1]") unless the shard has a window of
  // seq_len + 1 tokens and its vocab_size fits a model of model_vocab tokens.
  void require(Index seq_len, Index model_vocab, const std::string& role) const;
  // Reads window k (seq_len + 1 tokens); every id must be < model_vocab.
  void read_window(Index k, Index seq_len, Index model_vocab, std::int32_t* out) const;

 private:
  std::string path_;
  std::unique_ptr<h5::File> file_;
  std::unique_ptr<h5::RangeReader> tokens_;
  Index num_tokens_ = 0, vocab_size_ = 0;
  bool wide_ = false;  // uint32 on disk (else uint16)
  // In-order reading (Pythia's pre-shuffled data, evaluation) is served from a block of
  // kBlock tokens read at once; a jump elsewhere reads just the window.
  static constexpr Index kBlock = 1 << 20;
  mutable std::vector<std::uint32_t> block_;
  mutable Index block_start_ = 0, last_end_ = -1;
  mutable std::vector<std::uint16_t> narrow_;
  void read_tokens(Index start, Index count, std::uint32_t* out) const;  // native type, widened
};

// The root attributes that make `f` a token shard (docs/formats.md); /tokens is the caller's.
void set_token_shard_attrs(h5::File& f, Index vocab_size, Index eod_token, const std::string& tokenizer,
                           const std::string& source);

// Writes a token shard (uint16 when vocab ≤ 65536, else uint32), atomically.
void write_token_shard(const std::string& path, const std::vector<std::uint32_t>& tokens, Index vocab_size,
                       Index eod_token, const std::string& tokenizer, const std::string& source,
                       double entropy_rate = -1);

}  // namespace rewarm
