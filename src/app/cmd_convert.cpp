// rewarm convert hf MODEL --out CKPT      HF GPTNeoX safetensors + config.json -> checkpoint
// rewarm convert to-hf CKPT --out DIR     checkpoint -> a complete HF model directory
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "app/commands.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "data/bpe_tokenizer.hpp"
#include "data/megatron.hpp"
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/safetensors.hpp"
#include "model/param_layout.hpp"

namespace rewarm {
namespace fs = std::filesystem;

// Non-parameter buffers that old Pythia checkpoints carry.
static bool is_buffer(const std::string& name) {
  for (const char* suffix : {".attention.bias", ".attention.masked_bias", ".attention.rotary_emb.inv_freq"}) {
    const std::string s(suffix);
    if (name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) return true;
  }
  return false;
}

static void convert_hf(const std::string& in, const std::string& out) {
  // A directory holds config.json and model.safetensors (or its sharded index); a file names the weights.
  fs::path dir = fs::is_directory(in) ? fs::path(in) : fs::path(in).parent_path();
  std::string weights = in;
  if (fs::is_directory(in)) {
    weights = (dir / "model.safetensors").string();
    if (!fs::exists(weights)) weights = (dir / "model.safetensors.index.json").string();
    if (!fs::exists(weights)) fail(in, "has neither model.safetensors nor model.safetensors.index.json");
  } else if (!fs::exists(in)) {
    fail(in, "no such file or directory");
  }
  const std::string config_path = (dir / "config.json").string();
  if (!fs::exists(config_path)) fail(config_path, "cannot open (the HF config.json must sit beside the weights)");
  const ModelConfig model = ModelConfig::from_hf_json(read_json_file(config_path), config_path);
  const auto index = safetensors_index(weights);
  const ParamLayout layout(model);
  for (const auto& [name, t] : index)
    if (!layout.find(name) && !is_buffer(name))
      fail(t.file, "unexpected tensor '" + name + "' (not a GPTNeoXForCausalLM parameter)");
  CheckpointData c;
  c.model = model;
  c.config_text = "";
  if (fs::exists(dir / "tokenizer.json"))  // carried into the checkpoints of the runs that start from it
    c.tokenizer = BpeTokenizer::from_file((dir / "tokenizer.json").string()).text();
  c.params.assign(layout.total, 0.0f);
  for (const auto& e : layout.entries) {
    auto it = index.find(e.name);
    if (it == index.end()) fail(weights, "missing tensor '" + e.name + "'");
    if (it->second.shape != e.shape)
      fail(it->second.file, "tensor '" + e.name + "' has the wrong shape for " + config_path);
    const auto v = safetensors_read_float(it->second);
    std::copy(v.begin(), v.end(), c.params.begin() + e.offset);
  }
  write_checkpoint(out, c);
  std::printf("%s: %zu tensors, %lld parameters, from %s\n", out.c_str(), layout.entries.size(),
              static_cast<long long>(layout.total), weights.c_str());
}

// The tokenizer files AutoTokenizer.from_pretrained reads (GPT-NeoX-20B's fast tokenizer, as
// Pythia's hub directories hold them) and generation_config.json; the end-of-text token is the
// tokenizer's "<|endoftext|>".
static void write_tokenizer_files(const fs::path& out, const BpeTokenizer& tok, const ModelConfig& model,
                                  nlohmann::json& config) {
  const std::string eot = "<|endoftext|>";
  const auto id = tok.token_id(eot);
  config["bos_token_id"] = config["eos_token_id"] = id;
  write_text_file((out / "tokenizer.json").string(), tok.text());
  const nlohmann::json special{{"bos_token", eot}, {"eos_token", eot}, {"unk_token", eot}};
  nlohmann::json tc = special;
  tc["tokenizer_class"] = "GPTNeoXTokenizerFast";
  tc["add_bos_token"] = false;
  tc["add_eos_token"] = false;
  tc["add_prefix_space"] = false;
  tc["clean_up_tokenization_spaces"] = false;
  tc["model_max_length"] = model.max_position_embeddings;
  write_text_file((out / "tokenizer_config.json").string(), tc.dump(2) + "\n");
  write_text_file((out / "special_tokens_map.json").string(), special.dump(2) + "\n");
}

static void convert_to_hf(const std::string& in, const std::string& out, const std::string& dtype,
                          const std::string& tokenizer_path) {
  const CheckpointReader reader(in);  // the weights alone, verified as they are read
  if (!reader.checksummed()) std::fprintf(stderr, "rewarm: note: %s\n", unverified_note(reader).c_str());
  const std::string dt = dtype == "bf16" ? "BF16" : dtype == "f16" ? "F16" : dtype == "f32" ? "F32" : "";
  if (dt.empty()) fail(dtype, "--dtype must be f32, bf16 or f16");
  std::optional<BpeTokenizer> tok;  // --tokenizer, else the one the checkpoint carries; checked before any write
  if (!tokenizer_path.empty()) {
    tok = BpeTokenizer::from_file(tokenizer_path);
  } else if (const auto stored = reader.tokenizer(); !stored.empty()) {
    tok = BpeTokenizer::from_text(stored, in + " (its stored tokenizer.json)");
  }
  if (tok && tok->vocab_size() > std::uint32_t(reader.model().vocab_size))
    fail(tokenizer_path.empty() ? in : tokenizer_path,
         "the tokenizer has " + std::to_string(tok->vocab_size()) + " tokens, more than the model's vocab_size " +
             std::to_string(reader.model().vocab_size));
  CheckpointData c;
  c.model = reader.model();
  c.state = reader.state();
  const ParamLayout layout(c.model);
  c.params.assign(std::size_t(layout.total), 0.0f);
  reader.read_params(c.params.data());
  fs::create_directories(out);
  std::vector<std::string> names;
  std::vector<std::vector<std::int64_t>> shapes;
  std::vector<const float*> data;
  for (const auto& e : layout.entries) {
    names.push_back(e.name);
    shapes.push_back(e.shape);
    data.push_back(c.params.data() + e.offset);
  }
  const std::string st = (fs::path(out) / "model.safetensors").string();
  AtomicFile st_file(st);
  safetensors_write(st_file.tmp(), names, shapes, data, dt);
  st_file.commit();
  auto cfg = c.model.to_hf_json();
  cfg["torch_dtype"] = dtype == "bf16" ? "bfloat16" : dtype == "f16" ? "float16" : "float32";
  if (tok) write_tokenizer_files(out, *tok, c.model, cfg);
  write_text_file((fs::path(out) / "config.json").string(), cfg.dump(2) + "\n");
  const nlohmann::json generation{
      {"_from_model_config", true}, {"bos_token_id", cfg["bos_token_id"]}, {"eos_token_id", cfg["eos_token_id"]}};
  write_text_file((fs::path(out) / "generation_config.json").string(), generation.dump(2) + "\n");
  std::printf("%s: model.safetensors (%s), config.json, generation_config.json%s from %s (step %lld)\n", out.c_str(),
              dt.c_str(), tok ? ", tokenizer.json, tokenizer_config.json, special_tokens_map.json" : "", in.c_str(),
              static_cast<long long>(c.state.step));
  if (!tok)
    std::fprintf(stderr,
                 "rewarm: note: %s carries no tokenizer (its run's data did not come from `rewarm tokenize`): pass "
                 "--tokenizer tokenizer.json for a directory that AutoTokenizer and lm-eval load\n",
                 in.c_str());
}

void register_convert(CLI::App& app) {
  auto* cmd = app.add_subcommand("convert", "convert models between HF and rewarm formats");
  cmd->require_subcommand(1);
  auto* hf = cmd->add_subcommand("hf", "HF GPTNeoX (Pythia) safetensors + config.json -> rewarm checkpoint");
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  hf->add_option("model", *in, "model directory, model.safetensors or model.safetensors.index.json")->required();
  hf->add_option("--out", *out, "output checkpoint (.h5)")->required();
  hf->callback([in, out] { convert_hf(*in, *out); });

  auto* meg = cmd->add_subcommand("megatron", "GPT-NeoX/Megatron PREFIX.bin + PREFIX.idx -> token shard");
  auto opt = std::make_shared<MegatronOptions>();
  auto bins = std::make_shared<std::vector<std::string>>();
  auto quiet = std::make_shared<bool>(false);
  meg->add_option("prefix", *in, "PREFIX of PREFIX.idx (and PREFIX.bin unless --bin is given)")->required();
  meg->add_option("--out", *out, "output token shard (.h5)")->required();
  meg->add_option("--bin", *bins, "the .bin data as several files, in order (Pythia's document-000NN-of-00020.bin)");
  meg->add_option("--vocab-size", opt->vocab_size, "token ids must be below this")->capture_default_str();
  meg->add_option("--eod", opt->eod_token, "end-of-document token id")->capture_default_str();
  meg->add_flag("--append-eod", opt->append_eod, "write --eod after each document");
  meg->add_option("--chunk", opt->chunk, "HDF5 chunk size in tokens")->capture_default_str();
  meg->add_option("--compress", opt->deflate, "gzip level 1-9 (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 9));
  meg->add_option("--tokenizer", opt->tokenizer, "tokenizer name stored in the shard")->capture_default_str();
  meg->add_flag("--quiet", *quiet, "no progress line");
  meg->callback([in, out, opt, bins, quiet] {
    auto o = *opt;
    o.progress = !*quiet;
    const auto b = bins->empty() ? std::vector<std::string>{*in + ".bin"} : *bins;
    const auto s = convert_megatron(*in + ".idx", b, *out, o);
    std::printf("%s: %lld tokens, %lld sequences, %lld documents\n", out->c_str(), static_cast<long long>(s.tokens),
                static_cast<long long>(s.sequences), static_cast<long long>(s.documents));
  });

  auto* to_hf = cmd->add_subcommand(
      "to-hf", "rewarm checkpoint -> HF directory: model.safetensors, config.json, generation_config.json, tokenizer");
  auto dtype = std::make_shared<std::string>("f32");
  auto tokenizer = std::make_shared<std::string>();
  to_hf->add_option("checkpoint", *in, "rewarm checkpoint (.h5)")->required();
  to_hf->add_option("--out", *out, "output directory")->required();
  to_hf->add_option("--dtype", *dtype, "f32, bf16 or f16")->capture_default_str();
  to_hf->add_option("--tokenizer", *tokenizer,
                    "HF tokenizer.json to write beside the model (default: the one the checkpoint carries)");
  to_hf->callback([in, out, dtype, tokenizer] { convert_to_hf(*in, *out, *dtype, *tokenizer); });
}

}  // namespace rewarm
