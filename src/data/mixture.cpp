#include "data/mixture.hpp"

#include "core/error.hpp"
#include "core/random.hpp"

namespace rewarm {

Mixture::Mixture(const std::vector<DataSet>& sets, Index seq_len, bool shuffle, std::uint64_t seed, Index model_vocab)
    : weights_(shares(sets)), counts_(sets.size(), 0), origin_(sets.size(), 0), seq_len_(seq_len), vocab_(model_vocab) {
  for (std::size_t i = 0; i < sets.size(); ++i) {
    shards_.push_back(std::make_unique<TokenShard>(sets[i].path));
    shards_.back()->require(seq_len, model_vocab, "data.train[" + std::to_string(i) + "]");
    const Index n = shards_.back()->num_windows(seq_len);
    // each set its own shuffle; set 0 keeps the plain seed
    samplers_.emplace_back(n, shuffle, seed + kGoldenGamma * std::uint64_t(i));
  }
}

std::vector<double> Mixture::shares(const std::vector<DataSet>& sets) {
  double total = 0;
  for (const auto& s : sets) total += s.weight;
  std::vector<double> out;
  for (const auto& s : sets) out.push_back(s.weight / total);
  return out;
}

std::size_t Mixture::next_set() const {
  Index k = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) k += counts_[i] - origin_[i];
  std::size_t best = 0;
  double best_err = -1e300;
  for (std::size_t i = 0; i < weights_.size(); ++i) {
    const double err = weights_[i] * double(k + 1) - double(counts_[i] - origin_[i]);
    if (err > best_err) best_err = err, best = i;
  }
  return best;
}

Mixture::Draw Mixture::draw() {
  const std::size_t i = next_set();
  return {i, samplers_[i](counts_[i]++)};
}

void Mixture::read(const Draw& d, std::int32_t* out) const {
  shards_[d.set]->read_window(d.window, seq_len_, vocab_, out);
}

void Mixture::set_counts(const std::vector<Index>& counts, const std::vector<Index>& origin) {
  if (counts.size() != counts_.size() || (!origin.empty() && origin.size() != counts_.size()))
    throw Error("the checkpoint's data position covers " + std::to_string(counts.size()) +
                " training sets, the config has " + std::to_string(counts_.size()));
  counts_ = counts;
  origin_ = origin.empty() ? std::vector<Index>(counts.size(), 0) : origin;
}

}  // namespace rewarm
