#include "model/param_layout.hpp"

#include "core/error.hpp"

namespace rewarm {

std::string layer_prefix(Index i) { return "gpt_neox.layers." + std::to_string(i) + "."; }

ParamLayout::ParamLayout(const ModelConfig& c) {
  const Index d = c.hidden_size, V = c.vocab_size, I = c.intermediate_size;
  auto add = [&](const std::string& name, std::vector<Index> shape) {
    ParamEntry e{name, std::move(shape), total};
    total += (e.size() + 15) / 16 * 16;  // 64-byte aligned tensors for BLAS and vector loads
    entries.push_back(std::move(e));
  };
  // GPT-NeoX weight-decay groups: matrices and embeddings decay; biases and LayerNorm do not.
  add("gpt_neox.embed_in.weight", {V, d});
  for (Index i = 0; i < c.num_hidden_layers; ++i) {
    const auto p = layer_prefix(i);
    add(p + "attention.query_key_value.weight", {3 * d, d});
    add(p + "attention.dense.weight", {d, d});
    add(p + "mlp.dense_h_to_4h.weight", {I, d});
    add(p + "mlp.dense_4h_to_h.weight", {d, I});
  }
  add("embed_out.weight", {V, d});
  decay_end = total;
  for (Index i = 0; i < c.num_hidden_layers; ++i) {
    const auto p = layer_prefix(i);
    add(p + "input_layernorm.weight", {d});
    add(p + "input_layernorm.bias", {d});
    add(p + "post_attention_layernorm.weight", {d});
    add(p + "post_attention_layernorm.bias", {d});
    add(p + "attention.query_key_value.bias", {3 * d});
    add(p + "attention.dense.bias", {d});
    add(p + "mlp.dense_h_to_4h.bias", {I});
    add(p + "mlp.dense_4h_to_h.bias", {d});
  }
  add("gpt_neox.final_layer_norm.weight", {d});
  add("gpt_neox.final_layer_norm.bias", {d});
}

const ParamEntry* ParamLayout::find(const std::string& name) const {
  for (const auto& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

const ParamEntry& ParamLayout::at(const std::string& name) const {
  if (auto* e = find(name)) return *e;
  throw Error("no parameter named " + name);
}

}  // namespace rewarm
