// GPT-NeoX hyper-parameters, named as in HF config.json.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "core/index.hpp"

namespace rewarm {

struct ModelConfig {
  Index vocab_size = 50304;
  Index hidden_size = 512;
  Index num_hidden_layers = 6;
  Index num_attention_heads = 8;
  Index intermediate_size = 2048;
  double rotary_pct = 0.25;
  double rotary_emb_base = 10000.0;
  Index max_position_embeddings = 2048;
  double layer_norm_eps = 1e-5;
  bool use_parallel_residual = true;
  std::string hidden_act = "gelu";  // "gelu" (erf) or "gelu_fast" (tanh)

  Index head_dim() const { return hidden_size / num_attention_heads; }
  Index rotary_dims() const { return static_cast<Index>(head_dim() * rotary_pct); }
  bool tanh_gelu() const { return hidden_act != "gelu"; }

  // Throws naming `where` if the combination cannot be a GPT-NeoX model.
  void validate(const std::string& where) const;

  nlohmann::json to_hf_json() const;  // a config.json HF GPTNeoXForCausalLM accepts
  static ModelConfig from_hf_json(const nlohmann::json& j, const std::string& where);
  // Pythia sizes; throws naming the preset if unknown.
  static ModelConfig preset(const std::string& name, const std::string& where);
  bool operator==(const ModelConfig& o) const { return to_hf_json() == o.to_hf_json(); }
};

}  // namespace rewarm
