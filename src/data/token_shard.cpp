#include "data/token_shard.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/hdf5.hpp"

namespace rewarm {

TokenShard::TokenShard(const std::string& path)
    : path_(path), file_(std::make_unique<h5::File>(path, h5::File::ReadOnly)) {
  if (!file_->has_attr("format") || file_->attr_string("format") != "rewarm-tokens")
    fail(path, "not a rewarm token shard (root attribute format != \"rewarm-tokens\")");
  const auto shape = file_->shape("/tokens");
  if (shape.size() != 1) fail(path, "/tokens is not one-dimensional");
  const auto type = file_->type_name("/tokens");
  if (type != "uint16" && type != "uint32") fail(path, "/tokens has type " + type + ", expected uint16 or uint32");
  num_tokens_ = shape[0];
  vocab_size_ = file_->attr_int("vocab_size");
  wide_ = type == "uint32";
  tokens_ = std::make_unique<h5::RangeReader>(*file_, "/tokens");
}

TokenShard::~TokenShard() = default;

void TokenShard::require(Index seq_len, Index model_vocab, const std::string& role) const {
  if (vocab_size_ > model_vocab)
    fail(path_, "vocab_size " + std::to_string(vocab_size_) + " (" + role + ") exceeds the model's vocab_size " +
                    std::to_string(model_vocab));
  if (num_windows(seq_len) == 0)
    fail(path_, "has " + std::to_string(num_tokens_) + " tokens, no window of seq_len + 1 = " +
                    std::to_string(seq_len + 1) + " (" + role + ")");
}

void TokenShard::read_window(Index k, Index seq_len, Index model_vocab, std::int32_t* out) const {
  if (k < 0 || k >= num_windows(seq_len)) fail(path_, "window " + std::to_string(k) + " is out of range");
  const Index a = k * seq_len, n = seq_len + 1;
  auto* dst = reinterpret_cast<std::uint32_t*>(out);  // ids are checked below, all < 2^31
  if (a >= block_start_ && a + n <= block_start_ + Index(block_.size())) {
    std::copy_n(block_.begin() + (a - block_start_), n, dst);
  } else if (a == last_end_ - 1) {  // the next window in order: read ahead
    block_.resize(std::size_t(std::max(n, std::min(kBlock, num_tokens_ - a))));
    block_start_ = a;
    read_tokens(a, Index(block_.size()), block_.data());
    std::copy_n(block_.begin(), n, dst);
  } else {
    read_tokens(a, n, dst);
  }
  last_end_ = a + n;
  for (Index i = 0; i <= seq_len; ++i)
    if (out[i] < 0 || out[i] >= model_vocab)
      fail(path_, "token id " + std::to_string(static_cast<std::uint32_t>(out[i])) + " at position " +
                      std::to_string(k * seq_len + i) + " is >= vocab_size " + std::to_string(model_vocab));
}

void TokenShard::read_tokens(Index start, Index count, std::uint32_t* out) const {
  if (wide_) {
    tokens_->read(start, count, out);
    return;
  }
  narrow_.resize(std::size_t(count));
  tokens_->read(start, count, narrow_.data());  // no HDF5 type conversion: a plain copy
  std::copy(narrow_.begin(), narrow_.end(), out);
}

void set_token_shard_attrs(h5::File& f, Index vocab_size, Index eod_token, const std::string& tokenizer,
                           const std::string& source) {
  f.set_attr("format", std::string("rewarm-tokens"));
  f.set_attr("format_version", std::int64_t(1));
  f.set_attr("vocab_size", std::int64_t(vocab_size));
  f.set_attr("eod_token", std::int64_t(eod_token));
  f.set_attr("tokenizer", tokenizer);
  f.set_attr("source", source);
}

void write_token_shard(const std::string& path, const std::vector<std::uint32_t>& tokens, Index vocab_size,
                       Index eod_token, const std::string& tokenizer, const std::string& source, double entropy_rate) {
  AtomicFile out(path);
  {
    h5::File f(out.tmp(), h5::File::Create);
    set_token_shard_attrs(f, vocab_size, eod_token, tokenizer, source);
    if (entropy_rate >= 0) f.set_attr("entropy_rate", entropy_rate);
    const std::vector<std::int64_t> shape{std::int64_t(tokens.size())};
    if (vocab_size <= 65536) {
      std::vector<std::uint16_t> t16(tokens.begin(), tokens.end());
      f.write("/tokens", t16.data(), shape, 1 << 16);
    } else {
      f.write("/tokens", tokens.data(), shape, 1 << 16);
    }
    f.close();  // a failure here (a full disk) is reported; the shard is not put in place
  }
  out.commit();
}

}  // namespace rewarm
