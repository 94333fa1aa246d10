#include "model/param_layout.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace rewarm {

std::string layer_prefix(Index i) { return names::layers + std::to_string(i) + "."; }

bool is_layernorm_weight(const std::string& name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return name == names::final_ln_w || ends_with("." + names::ln1_w) || ends_with("." + names::ln2_w);
}

ParamLayout::ParamLayout(const ModelConfig& c) : layers(c.num_hidden_layers) {
  const Index d = c.hidden_size, V = c.vocab_size, I = c.intermediate_size;
  auto add = [&](const std::string& name, std::vector<Index> shape) {
    ParamEntry e{name, std::move(shape), total};
    total += (e.size() + 15) / 16 * 16;  // 64-byte aligned tensors for BLAS and vector loads
    index_[name] = entries.size();
    entries.push_back(std::move(e));
  };
  // GPT-NeoX weight-decay groups: matrices and embeddings decay; biases and LayerNorm do not.
  add(names::embed_in, {V, d});
  for (Index i = 0; i < c.num_hidden_layers; ++i) {
    const auto p = layer_prefix(i);
    add(p + names::qkv_w, {3 * d, d});
    add(p + names::dense_w, {d, d});
    add(p + names::fc1_w, {I, d});
    add(p + names::fc2_w, {d, I});
  }
  add(names::embed_out, {V, d});
  decay_end = total;
  for (Index i = 0; i < c.num_hidden_layers; ++i) {
    const auto p = layer_prefix(i);
    add(p + names::ln1_w, {d});
    add(p + names::ln1_b, {d});
    add(p + names::ln2_w, {d});
    add(p + names::ln2_b, {d});
    add(p + names::qkv_b, {3 * d});
    add(p + names::dense_b, {d});
    add(p + names::fc1_b, {I});
    add(p + names::fc2_b, {d});
  }
  add(names::final_ln_w, {d});
  add(names::final_ln_b, {d});
}

std::vector<std::vector<std::pair<Index, Index>>> ParamLayout::gradient_buckets() const {
  std::vector<std::vector<std::pair<Index, Index>>> buckets(std::size_t(layers + 2));
  auto bucket_of = [&](const std::string& name) -> std::size_t {
    if (name.rfind(names::layers, 0) != 0) return name == names::embed_in ? std::size_t(layers + 1) : 0;
    const Index l = std::stoll(name.substr(names::layers.size()));
    return std::size_t(layers - l);  // layer L-1 finishes first
  };
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Index begin = entries[i].offset, end = i + 1 < entries.size() ? entries[i + 1].offset : total;
    auto& ranges = buckets[bucket_of(entries[i].name)];
    if (!ranges.empty() && ranges.back().second == begin)
      ranges.back().second = end;  // adjacent tensors: one range
    else
      ranges.emplace_back(begin, end);
  }
  return buckets;
}

Index ParamLayout::largest_bucket_range() const {
  Index n = 0;
  for (const auto& bucket : gradient_buckets())
    for (const auto& [begin, end] : bucket) n = std::max(n, end - begin);
  return n;
}

Index ParamLayout::parameters() const {
  Index n = 0;
  for (const auto& e : entries) n += e.size();
  return n;
}

Index ParamLayout::largest_bucket() const {
  Index n = 0;
  for (const auto& bucket : gradient_buckets()) {
    Index size = 0;
    for (const auto& [begin, end] : bucket) size += end - begin;
    n = std::max(n, size);
  }
  return n;
}

const ParamEntry* ParamLayout::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries[it->second];
}

const ParamEntry& ParamLayout::at(const std::string& name) const {
  if (auto* e = find(name)) return *e;
  throw Error("no parameter named " + name);
}

double training_flops_per_token(const ModelConfig& c, Index seq_len) {
  double matmul = 0;
  for (const auto& e : ParamLayout(c).entries)
    if (e.shape.size() == 2 && e.name != names::embed_in) matmul += double(e.size());
  return 6 * matmul + 12.0 * double(c.num_hidden_layers * c.hidden_size * seq_len);
}

}  // namespace rewarm
