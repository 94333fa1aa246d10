#include "model/config.hpp"

#include "core/error.hpp"

namespace rewarm {

void ModelConfig::validate(const std::string& where) const {
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) fail(where, what);
  };
  need(vocab_size > 0, "vocab_size must be positive");
  need(hidden_size > 0 && num_hidden_layers > 0 && intermediate_size > 0, "sizes must be positive");
  need(num_attention_heads > 0 && hidden_size % num_attention_heads == 0,
       "num_attention_heads = " + std::to_string(num_attention_heads) +
           " does not divide hidden_size = " + std::to_string(hidden_size));
  need(rotary_pct >= 0 && rotary_pct <= 1, "rotary_pct must be in [0, 1]");
  need(rotary_dims() % 2 == 0, "head_dim * rotary_pct = " + std::to_string(rotary_dims()) + " must be even");
  need(head_dim() <= 1024, "head_dim above 1024 is not supported");
  need(max_position_embeddings > 0, "max_position_embeddings must be positive");
  need(layer_norm_eps > 0, "layer_norm_eps must be positive");
  need(hidden_act == "gelu" || hidden_act == "gelu_fast" || hidden_act == "gelu_new" ||
           hidden_act == "gelu_pytorch_tanh",
       "hidden_act = \"" + hidden_act +
           "\" is not one of gelu (exact erf), gelu_fast, gelu_new, gelu_pytorch_tanh (tanh approximations)");
}

std::vector<ModelConfig::Difference> ModelConfig::differences(const ModelConfig& theirs) const {
  const auto a = to_hf_json(), b = theirs.to_hf_json();
  std::vector<Difference> out;
  for_each_field([&](const char* key, const auto&) {
    if (a.at(key) != b.at(key)) out.push_back({key, a.at(key).dump(), b.at(key).dump()});
  });
  return out;
}

nlohmann::json ModelConfig::to_hf_json() const {
  return {{"architectures", {"GPTNeoXForCausalLM"}},
          {"model_type", "gpt_neox"},
          {"vocab_size", vocab_size},
          {"hidden_size", hidden_size},
          {"num_hidden_layers", num_hidden_layers},
          {"num_attention_heads", num_attention_heads},
          {"intermediate_size", intermediate_size},
          {"rotary_pct", rotary_pct},
          {"rotary_emb_base", rotary_emb_base},
          {"partial_rotary_factor", rotary_pct},  // the names newer transformers read
          {"rope_theta", rotary_emb_base},
          {"rope_scaling", nullptr},
          {"max_position_embeddings", max_position_embeddings},
          {"layer_norm_eps", layer_norm_eps},
          {"use_parallel_residual", use_parallel_residual},
          {"hidden_act", hidden_act},
          {"tie_word_embeddings", false},
          {"attention_bias", true},
          {"attention_dropout", 0.0},
          {"hidden_dropout", 0.0},
          {"initializer_range", 0.02},
          {"bos_token_id", 0},
          {"eos_token_id", 0},
          {"use_cache", true},
          {"torch_dtype", "float32"}};
}

ModelConfig ModelConfig::from_hf_json(const nlohmann::json& j, const std::string& where) {
  ModelConfig c;
  try {
    if (j.contains("model_type") && j["model_type"] != "gpt_neox")
      fail(where, "model_type = " + j["model_type"].dump() + " is not gpt_neox");
    if (j.value("tie_word_embeddings", false)) fail(where, "tie_word_embeddings = true is not GPT-NeoX");
    if (!j.value("attention_bias", true)) fail(where, "attention_bias = false is not supported");
    c.vocab_size = j.at("vocab_size").get<Index>();
    c.hidden_size = j.at("hidden_size").get<Index>();
    c.num_hidden_layers = j.at("num_hidden_layers").get<Index>();
    c.num_attention_heads = j.at("num_attention_heads").get<Index>();
    c.intermediate_size = j.at("intermediate_size").get<Index>();
    // newer transformers write partial_rotary_factor / rope_theta instead
    c.rotary_pct = j.value("rotary_pct", j.value("partial_rotary_factor", 0.25));
    c.rotary_emb_base = j.value("rotary_emb_base", j.value("rope_theta", 10000.0));
    c.max_position_embeddings = j.value("max_position_embeddings", Index(2048));
    c.layer_norm_eps = j.value("layer_norm_eps", 1e-5);
    c.use_parallel_residual = j.value("use_parallel_residual", true);
    c.hidden_act = j.value("hidden_act", std::string("gelu"));
  } catch (const nlohmann::json::exception& e) {
    fail(where, std::string("bad GPT-NeoX config: ") + e.what());
  }
  c.validate(where);
  return c;
}

ModelConfig ModelConfig::preset(const std::string& name, const std::string& where) {
  struct Size {
    const char* name;
    Index d, layers, heads, vocab;  // vocab: the embedding's rows, padded differently by size
  };
  static const Size sizes[] = {{"pythia-14m", 128, 6, 4, 50304},    {"pythia-70m", 512, 6, 8, 50304},
                               {"pythia-160m", 768, 12, 12, 50304}, {"pythia-410m", 1024, 24, 16, 50304},
                               {"pythia-1b", 2048, 16, 8, 50304},   {"pythia-1.4b", 2048, 24, 16, 50304},
                               {"pythia-2.8b", 2560, 32, 32, 50304}, {"pythia-6.9b", 4096, 32, 32, 50432},
                               {"pythia-12b", 5120, 36, 40, 50688}};
  std::vector<std::string> names;
  for (const auto& s : sizes) {
    names.push_back(s.name);
    if (name != s.name) continue;
    ModelConfig c;
    c.hidden_size = s.d;
    c.num_hidden_layers = s.layers;
    c.num_attention_heads = s.heads;
    c.intermediate_size = 4 * s.d;
    c.vocab_size = s.vocab;
    return c;
  }
  fail(where, "unknown preset \"" + name + "\"" + did_you_mean(name, names, "", true));
}

}  // namespace rewarm
