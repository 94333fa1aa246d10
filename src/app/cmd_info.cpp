// rewarm info FILE.h5 [--verify]: a few lines about a token shard, checkpoint or metrics file;
// --verify reads every dataset through, so that HDF5 checks every checksum the file carries.
#include <cmath>
#include <cstdio>

#include "app/commands.hpp"
#include "app/run_config.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "data/task_file.hpp"
#include "io/checkpoint.hpp"
#include "io/hdf5.hpp"
#include "io/metrics.hpp"
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
    const std::string moments = c.optimizer.moment_warmup_steps > 0
                                    ? " after " + std::to_string(c.optimizer.moment_warmup_steps) + " moment-warmup steps"
                                    : "";
    std::printf("  run: %s; %s lr %.3g -> %.3g, warmup %lld of %lld steps%s; init %s (%s); train on %s\n",
                c.run_dir.c_str(), c.schedule.kind.c_str(), c.optimizer.lr, c.optimizer.min_lr,
                static_cast<long long>(c.schedule.warmup_steps), static_cast<long long>(c.schedule.total_steps),
                moments.c_str(), c.init.from.c_str(), option_name(c.init.load).c_str(), sets.c_str());
  } catch (const Error& e) {
    std::printf("  run: stored config unreadable (%s)\n", e.what());
  }
}

// Reads every dataset of the file and says what that checked.
static void verify(const h5::File& f, const std::string& format) {
  std::size_t checked = 0, unchecked = 0;
  std::uint64_t bytes = 0;
  std::string first_unchecked;
  for (const auto& name : f.datasets()) {
    bytes += f.read_through(name);
    if (f.has_checksum(name)) {
      ++checked;
    } else if (++unchecked == 1) {
      first_unchecked = name;
    }
  }
  const std::string metadata = f.metadata_checksummed() ? " and the metadata's" : "";
  if (unchecked == 0) {
    std::printf("  verified: %zu datasets read in full (%.3g MB): every chunk's checksum%s matched\n", checked,
                double(bytes) / 1e6, metadata.c_str());
  } else {
    const char* why = format == "rewarm-metrics"
                          ? "metrics series are appended in place, where a chunk checksum would be rewritten under "
                            "the readers of a running training"
                          : "written before rewarm stored checksums, or by another program";
    std::printf("  read: %zu datasets in full (%.3g MB), readable; %zu of them (%s%s) carry no checksums%s, so their "
                "data is not verified (%s)\n",
                checked + unchecked, double(bytes) / 1e6, unchecked, first_unchecked.c_str(), unchecked > 1 ? ", ..." : "",
                metadata.empty() ? " and neither does the metadata" : " (the metadata's checksums matched)", why);
  }
}

static void info(const std::string& path, const std::vector<Index>& seq_lens, bool check) {
  const std::string expected = "a rewarm token shard, task, checkpoint or metrics file";
  std::string format;
  {  // SWMR: a metrics file may be open in a running training, or left so by a killed one
    const h5::File probe(path, h5::File::ReadLive, expected);
    format = probe.has_attr("format") ? probe.attr_string("format") : "";
  }  // closed: one process opens a file in one mode at a time
  const h5::File f(path, format == "rewarm-metrics" ? h5::File::ReadLive : h5::File::ReadOnly, expected);
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
  } else if (format == "rewarm-task") {
    const auto t = TaskFile::read(path);  // checks its offsets and answers
    Index single = 0;
    for (Index e = 0; e < t.examples(); ++e) single += t.choices(e) == 1;
    std::printf("%s: task, %lld examples (%lld with one choice), %zu choices, vocab_size %lld\n", path.c_str(),
                static_cast<long long>(t.examples()), static_cast<long long>(single), t.choice_bytes.size(),
                static_cast<long long>(t.vocab_size));
    std::printf("  tokens: %zu of contexts, %zu of choices\n  tokenizer: %s\n  source: %s\n", t.context_tokens.size(),
                t.choice_tokens.size(), t.tokenizer.c_str(), t.source.c_str());
  } else if (format == "rewarm-checkpoint") {
    const CheckpointReader ck(path);  // checks every tensor's presence and shape
    const auto& model = ck.model();
    Index params = 0;
    for (const auto& e : ParamLayout(model).entries) params += e.size();
    std::printf("%s: checkpoint at step %lld, %lld tokens seen, optimizer state %s, tokenizer %s, world_size %d\n",
                path.c_str(), static_cast<long long>(ck.state().step), static_cast<long long>(ck.state().tokens_seen),
                ck.has_optimizer() ? "yes" : "no", ck.tokenizer().empty() ? "no" : "yes", ck.world_size());
    std::printf(
        "  model: GPT-NeoX, %lld parameters, hidden %lld, layers %lld, heads %lld, vocab %lld, %s residual, %s\n",
        static_cast<long long>(params), static_cast<long long>(model.hidden_size),
        static_cast<long long>(model.num_hidden_layers), static_cast<long long>(model.num_attention_heads),
        static_cast<long long>(model.vocab_size), model.use_parallel_residual ? "parallel" : "sequential",
        model.hidden_act.c_str());
    describe_run(ck.config_text(), path);
    if (!ck.checksummed()) std::printf("  note: %s\n", unverified_note(ck).c_str());
  } else if (format == "rewarm-metrics") {
    std::printf("%s: metrics, device %s, world_size %lld, precision %s, attention %s\n", path.c_str(),
                f.attr_string("device").c_str(), static_cast<long long>(f.attr_int("world_size")),
                f.has_attr("precision") ? f.attr_string("precision").c_str() : "fp32",
                f.has_attr("attention") ? f.attr_string("attention").c_str() : "gemm");
    describe_run(f.attr_string("config"), path);
    std::string series;
    for (const auto& name : f.list("/train")) series += " " + name;
    if (!series.empty()) std::printf("  /train series:%s\n", series.c_str());
    for (const auto& [group, s] : read_metrics(path)) {  // rows: what every series of the group holds
      if (s.step.empty()) continue;
      if (group.rfind("tasks/", 0) == 0) {
        std::printf("  task %s: %zu rows, last step %lld, acc %.4f", group.substr(6).c_str(), s.step.size(),
                    static_cast<long long>(s.step.back()), s.values.at("acc").back());
        const double norm = s.values.at("acc_norm").back();
        if (!std::isnan(norm)) std::printf(", acc_norm %.4f", norm);
        std::printf("\n");
        continue;
      }
      const double loss = s.values.at("loss").back();
      if (group == "train")
        std::printf("  train: %zu rows, last step %lld, loss %.6f\n", s.step.size(),
                    static_cast<long long>(s.step.back()), loss);
      else
        std::printf("  eval %s: %zu rows, last step %lld, loss %.6f, perplexity %.4f\n", group.substr(5).c_str(),
                    s.step.size(), static_cast<long long>(s.step.back()), loss, std::exp(loss));
    }
  } else {
    fail(path, "not a rewarm file (root attribute format is \"" + format + "\")");
  }
  if (check) verify(f, format);
}

void register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "describe a token shard, task file, checkpoint or metrics file");
  auto path = std::make_shared<std::string>();
  auto seq_lens = std::make_shared<std::vector<Index>>();
  cmd->add_option("file", *path, "rewarm HDF5 file")->required();
  cmd->add_option("--seq-len", *seq_lens, "token shards: count training windows at these seq_len (default 512 1024 2048)")
      ->check(CLI::Range(Index(1), Index(1) << 40));
  auto check = std::make_shared<bool>(false);
  cmd->add_flag("--verify", *check,
                "read every dataset through: HDF5 checks every checksum the file carries (checkpoints, shards, metrics)");
  cmd->callback([path, seq_lens, check] {
    info(*path, seq_lens->empty() ? std::vector<Index>{512, 1024, 2048} : *seq_lens, *check);
  });
}

}  // namespace rewarm
