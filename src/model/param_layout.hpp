// Where each named parameter lives in the flat buffers (parameters, gradients,
// Adam moments share one layout). Names and shapes are HF GPTNeoX's.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "model/config.hpp"

namespace rewarm {

struct ParamEntry {
  std::string name;
  std::vector<Index> shape;
  Index offset = 0;
  Index size() const {
    Index n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
};

struct ParamLayout {
  std::vector<ParamEntry> entries;
  Index decay_end = 0;  // decayed tensors (matrices, embeddings) come first: [0, decay_end)
  Index total = 0;      // buffer length, including alignment padding
  Index layers = 0;     // transformer layers

  explicit ParamLayout(const ModelConfig& c);
  // The buffer split by when the backward pass finishes each part's gradients: embed_out and
  // the final LayerNorm first, then layer L-1 down to 0, then embed_in. Each bucket is a few
  // [begin, end) ranges; together they cover [0, total) exactly (padding included).
  std::vector<std::vector<std::pair<Index, Index>>> gradient_buckets() const;
  // The longest [begin, end) range of any bucket (what ZeRO-2 sums over the ranks at once).
  Index largest_bucket_range() const;
  // The most elements of any bucket, its ranges together (a ZeRO-3 unit's gathered buffer).
  Index largest_bucket() const;
  // The model's parameter count: every tensor's elements, no padding (what HF counts).
  Index parameters() const;
  const ParamEntry& at(const std::string& name) const;
  const ParamEntry* find(const std::string& name) const;

 private:
  std::unordered_map<std::string, std::size_t> index_;  // name -> entries[i] (ZeRO-3 binds units often)
};

// HF GPTNeoX tensor names, spelled once: the layout, the model's tensor binding, checkpoints
// and conversions all use these.
namespace names {
inline const std::string layers = "gpt_neox.layers.";  // + i + "." is layer_prefix(i)
inline const std::string embed_in = "gpt_neox.embed_in.weight", embed_out = "embed_out.weight",
                         final_ln_w = "gpt_neox.final_layer_norm.weight", final_ln_b = "gpt_neox.final_layer_norm.bias";
// after layer_prefix(i)
inline const std::string ln1_w = "input_layernorm.weight", ln1_b = "input_layernorm.bias",
                         ln2_w = "post_attention_layernorm.weight", ln2_b = "post_attention_layernorm.bias",
                         qkv_w = "attention.query_key_value.weight", qkv_b = "attention.query_key_value.bias",
                         dense_w = "attention.dense.weight", dense_b = "attention.dense.bias",
                         fc1_w = "mlp.dense_h_to_4h.weight", fc1_b = "mlp.dense_h_to_4h.bias",
                         fc2_w = "mlp.dense_4h_to_h.weight", fc2_b = "mlp.dense_4h_to_h.bias";
}  // namespace names

// Prefix of layer i's tensor names.
std::string layer_prefix(Index i);
// LayerNorm weights start at 1 in a random init (names: any layer's ln1_w/ln2_w, final_ln_w).
bool is_layernorm_weight(const std::string& name);

// Training FLOPs per token (PaLM convention): 6 per weight of every matrix product (forward +
// backward) plus 12·L·d·T for the attention scores and values. What MFU and TFLOP/s count.
double training_flops_per_token(const ModelConfig& c, Index seq_len);

}  // namespace rewarm
