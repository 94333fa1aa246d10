// rewarm info FILE.h5: a few lines about a token shard, checkpoint or metrics file.
#include <cmath>
#include <cstdio>

#include "app/commands.hpp"
#include "app/run_config.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "io/hdf5.hpp"
#include "model/config.hpp"
#include "model/param_layout.hpp"

namespace rewarm {

// The run a checkpoint or metrics file came from, in one line (from its stored config).
static void describe_run(const std::string& config, const std::string& path) {
  if (config.empty()) {
    std::printf("  run: none (converted, not trained)\n");
    return;
  }
  try {
    const auto c = parse_run_config(config, path + " (stored config)", {});
    std::string sets;
    for (const auto& d : c.data.train) {
      char w[32];
      std::snprintf(w, sizeof w, " %g", d.weight);
      sets += (sets.empty() ? "" : ", ") + d.name + w;
    }
    std::printf("  run: %s; %s lr %.3g -> %.3g, warmup %lld of %lld steps; init %s (%s); train on %s\n",
                c.run_dir.c_str(), c.schedule.kind.c_str(), c.optimizer.lr, c.optimizer.min_lr,
                static_cast<long long>(c.schedule.warmup_steps), static_cast<long long>(c.schedule.total_steps),
                c.init.from.c_str(), c.init.load.c_str(), sets.c_str());
  } catch (const Error& e) {
    std::printf("  run: stored config unreadable (%s)\n", e.what());
  }
}

static void info(const std::string& path, const std::vector<Index>& seq_lens) {
  h5::File f(path, h5::File::ReadOnly);
  const std::string format = f.has_attr("format") ? f.attr_string("format") : "";
  if (format == "rewarm-tokens") {
    const auto n = f.shape("/tokens").at(0);
    std::printf("%s: token shard, %lld tokens (%s), vocab_size %lld, eod_token %lld\n", path.c_str(),
                static_cast<long long>(n), f.type_name("/tokens").c_str(),
                static_cast<long long>(f.attr_int("vocab_size")), static_cast<long long>(f.attr_int("eod_token")));
    std::printf("  tokenizer: %s\n  source: %s\n", f.attr_string("tokenizer").c_str(), f.attr_string("source").c_str());
    if (f.exists("/document_offsets"))  // one start per document, then the end
      std::printf("  documents: %lld\n", static_cast<long long>(f.shape("/document_offsets").at(0) - 1));
    if (f.has_attr("entropy_rate")) std::printf("  entropy_rate: %.6f nats/token\n", f.attr_double("entropy_rate"));
    std::string windows;
    for (Index T : seq_lens)
      windows += (windows.empty() ? "" : ", ") + std::to_string(n > 0 ? (n - 1) / T : 0) + " at seq_len " + std::to_string(T);
    std::printf("  windows: %s\n", windows.c_str());
  } else if (format == "rewarm-checkpoint") {
    const auto model = ModelConfig::from_hf_json(parse_json(f.attr_string("model_config"), path, "attribute model_config is not JSON"), path);
    Index params = 0;
    for (const auto& e : ParamLayout(model).entries) params += e.size();
    std::printf("%s: checkpoint at step %lld, %lld tokens seen, optimizer state %s, world_size %lld\n", path.c_str(),
                static_cast<long long>(f.attr_int("step")), static_cast<long long>(f.attr_int("tokens_seen")),
                f.exists("/optimizer/exp_avg") ? "yes" : "no",
                static_cast<long long>(f.has_attr("world_size") ? f.attr_int("world_size") : 1));
    std::printf(
        "  model: GPT-NeoX, %lld parameters, hidden %lld, layers %lld, heads %lld, vocab %lld, %s residual, %s\n",
        static_cast<long long>(params), static_cast<long long>(model.hidden_size),
        static_cast<long long>(model.num_hidden_layers), static_cast<long long>(model.num_attention_heads),
        static_cast<long long>(model.vocab_size), model.use_parallel_residual ? "parallel" : "sequential",
        model.hidden_act.c_str());
    describe_run(f.has_attr("config") ? f.attr_string("config") : "", path);
  } else if (format == "rewarm-metrics") {
    std::printf("%s: metrics, device %s, world_size %lld, precision %s\n", path.c_str(), f.attr_string("device").c_str(),
                static_cast<long long>(f.attr_int("world_size")),
                f.has_attr("precision") ? f.attr_string("precision").c_str() : "fp32");
    describe_run(f.attr_string("config"), path);
    std::string series;
    for (const auto& name : f.list("/train")) series += " " + name;
    if (!series.empty()) std::printf("  /train series:%s\n", series.c_str());
    if (f.exists("/train/step")) {
      const auto steps = f.read<std::int64_t>("/train/step");
      const auto loss = f.read<double>("/train/loss");
      if (!steps.empty())
        std::printf("  train: %zu rows, last step %lld, loss %.6f\n", steps.size(),
                    static_cast<long long>(steps.back()), loss.back());
    }
    for (const auto& set : f.list("/eval")) {
      const auto steps = f.read<std::int64_t>("/eval/" + set + "/step");
      const auto loss = f.read<double>("/eval/" + set + "/loss");
      if (!steps.empty())
        std::printf("  eval %s: %zu rows, last step %lld, loss %.6f, perplexity %.4f\n", set.c_str(), steps.size(),
                    static_cast<long long>(steps.back()), loss.back(), std::exp(loss.back()));
    }
  } else {
    fail(path, "not a rewarm file (root attribute format is \"" + format + "\")");
  }
}

void register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "describe a token shard, checkpoint or metrics file");
  auto path = std::make_shared<std::string>();
  auto seq_lens = std::make_shared<std::vector<Index>>();
  cmd->add_option("file", *path, "rewarm HDF5 file")->required();
  cmd->add_option("--seq-len", *seq_lens, "token shards: count training windows at these seq_len (default 512 1024 2048)")
      ->check(CLI::Range(Index(1), Index(1) << 40));
  cmd->callback([path, seq_lens] {
    info(*path, seq_lens->empty() ? std::vector<Index>{512, 1024, 2048} : *seq_lens);
  });
}

}  // namespace rewarm
