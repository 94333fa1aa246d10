// GPT-NeoX hyper-parameters, named as in HF config.json.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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
  std::string hidden_act = "gelu";  // "gelu" (erf) or a tanh approximation: gelu_fast, gelu_new, gelu_pytorch_tanh

  // Calls f(name, field) for every architecture field, HF config.json names in a fixed order:
  // the one list that the TOML parser, the resolved config and comparisons read.
  template <class F>
  void for_each_field(F&& f) {
    fields(*this, f);
  }
  template <class F>
  void for_each_field(F&& f) const {
    fields(*this, f);
  }
  struct Difference {
    std::string key, ours, theirs;  // values as JSON text
  };
  // The fields that differ (empty when the architectures agree).
  std::vector<Difference> differences(const ModelConfig& theirs) const;

  Index head_dim() const { return hidden_size / num_attention_heads; }
  Index rotary_dims() const { return static_cast<Index>(head_dim() * rotary_pct); }
  bool tanh_gelu() const { return hidden_act != "gelu"; }

  // Throws naming `where` if the combination cannot be a GPT-NeoX model.
  void validate(const std::string& where) const;

  nlohmann::json to_hf_json() const;  // a config.json HF GPTNeoXForCausalLM accepts
  static ModelConfig from_hf_json(const nlohmann::json& j, const std::string& where);
  // Pythia sizes; throws naming the preset if unknown.
  static ModelConfig preset(const std::string& name, const std::string& where);
  bool operator==(const ModelConfig& o) const { return differences(o).empty(); }

 private:
  template <class Self, class F>
  static void fields(Self& s, F& f) {
    f("vocab_size", s.vocab_size);
    f("hidden_size", s.hidden_size);
    f("num_hidden_layers", s.num_hidden_layers);
    f("num_attention_heads", s.num_attention_heads);
    f("intermediate_size", s.intermediate_size);
    f("rotary_pct", s.rotary_pct);
    f("rotary_emb_base", s.rotary_emb_base);
    f("max_position_embeddings", s.max_position_embeddings);
    f("layer_norm_eps", s.layer_norm_eps);
    f("use_parallel_residual", s.use_parallel_residual);
    f("hidden_act", s.hidden_act);
  }
};

}  // namespace rewarm
