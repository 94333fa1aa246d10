// rewarm plan CONFIG [--set ...] [--ranks N] [--device-memory GiB] [--json FILE]: the memory per
// rank that `train` would allocate (the estimate it checks before allocating), by part; the
// largest micro_batch that fits; and every ZeRO stage × recompute mode. Starts no Kokkos device.
#include <cstdio>
#include <fstream>

#include "app/commands.hpp"
#include "app/memory_plan.hpp"
#include "core/device.hpp"
#include "core/error.hpp"
#include "core/gemm.hpp"
#include "core/json.hpp"
#include "io/checkpoint.hpp"

namespace rewarm {

namespace {
double to_gib(double bytes) { return bytes / double(1ull << 30); }

void plan(const std::string& path, const std::vector<std::string>& sets, int ranks, double device_gib,
          const std::string& json_path) {
  auto cfg = load_run_config(path, sets);
  if (!cfg.model_given) {  // the model of the checkpoint it starts from (its header only)
    if (cfg.init.from == "random") fail(cfg.source, "a [model] table is required when init.from = \"random\"");
    cfg.model = CheckpointReader(cfg.init.from).model();
    cfg.validate_model();
  }
  if (ranks < 1) fail("--ranks " + std::to_string(ranks), "must be at least 1");
  if (cfg.data.global_batch % (cfg.data.micro_batch * ranks) != 0)
    fail(cfg.source, "data.global_batch = " + std::to_string(cfg.data.global_batch) +
                         " is not a multiple of data.micro_batch × ranks = " + std::to_string(cfg.data.micro_batch) +
                         " × " + std::to_string(ranks));
  std::string memory_from = "--device-memory";
  if (device_gib <= 0) {
    if (kHostMemory) {
      const auto b = memory_budget();
      device_gib = to_gib(double(b.total ? b.free : 0)) / ranks;
      memory_from = "this machine's available memory over " + std::to_string(ranks) + " rank(s)";
    } else {
      device_gib = 80;
      memory_from = "an 80 GiB GPU; --device-memory to change";
    }
  }
  const double budget = device_gib * double(1ull << 30);
  // The GEMM attention: the fused attention's plans (and workspace) exist only on a GPU with
  // cuDNN; it needs less.
  const GptOptions o = model_options(cfg, nullptr);
  const Index P = ParamLayout(cfg.model).total;
  const Index params = ParamLayout(cfg.model).parameters();
  const auto mine = rank_memory(cfg, ranks, 0, o);

  std::printf(
      "plan  %lld parameters; micro_batch %lld × seq_len %lld on %d rank%s; GEMMs %s, recompute %s, zero %lld\n",
      static_cast<long long>(params), static_cast<long long>(cfg.data.micro_batch),
      static_cast<long long>(cfg.data.seq_len), ranks, ranks > 1 ? "s" : "", to_string(cfg.precision.gemm).c_str(),
      to_string(cfg.memory.recompute).c_str(), static_cast<long long>(cfg.parallel.zero));
  std::printf("memory per rank (rank 0; the GEMM attention%s):\n",
              cfg.precision.attention == AttentionRequest::gemm ? "" : ", the fused attention needs less");
  for (const auto& [name, bytes] : mine.parts())
    if (bytes < (1u << 24))  // small parts in MiB, so that none reads 0
      std::printf("  %-24s %10.3f MiB\n", name.c_str(), double(bytes) / (1 << 20));
    else
      std::printf("  %-24s %10.3f GiB\n", name.c_str(), to_gib(double(bytes)));
  const bool fits = double(mine.total()) <= budget;
  std::printf("  %-24s %10.3f GiB of %.1f GiB (%s): %s\n", "total", to_gib(double(mine.total())), device_gib,
              memory_from.c_str(), fits ? "fits" : "does not fit");

  // the largest micro_batch that divides the per-rank batch and fits
  Index best = 0;
  const Index per_rank = cfg.data.global_batch / ranks;
  for (Index mb = 1; mb <= per_rank; ++mb) {
    if (per_rank % mb) continue;
    auto c = cfg;
    c.data.micro_batch = mb;
    if (double(rank_memory(c, ranks, 0, model_options(c, nullptr)).total()) <= budget) best = mb;
  }
  if (best)
    std::printf("largest micro_batch that fits: %lld (of the %lld samples per rank per step)\n",
                static_cast<long long>(best), static_cast<long long>(per_rank));
  else
    std::printf("no micro_batch fits in %.1f GiB with zero %lld and recompute %s\n", device_gib,
                static_cast<long long>(cfg.parallel.zero), to_string(cfg.memory.recompute).c_str());

  std::printf("total per rank, GiB (* fits in %.1f GiB):\n%-10s", device_gib, "");
  const char* modes[] = {"none", "selective", "full"};
  for (const char* r : modes) std::printf("%14s", r);
  std::printf("\n");
  nlohmann::json table = nlohmann::json::array();
  for (int zero = 0; zero <= 3; ++zero) {
    std::printf("  zero %d  ", zero);
    for (const char* r : modes) {
      auto c = cfg;
      c.parallel.zero = zero;
      c.memory.recompute = parse_recompute(r, cfg.source);
      if (zero >= 2) c.parallel.reduce = GradientReduce::exact;
      const auto oc = model_options(c, nullptr);
      const double bytes = double(rank_memory(c, ranks, 0, oc).total());
      std::printf("%13.2f%s", to_gib(bytes), bytes <= budget ? "*" : " ");
      table.push_back({{"zero", zero}, {"recompute", r}, {"bytes", bytes}, {"fits", bytes <= budget}});
    }
    std::printf("\n");
  }
  if (json_path.empty()) return;
  nlohmann::json parts = nlohmann::json::object(), per_rank_total = nlohmann::json::array();
  for (const auto& [name, bytes] : mine.parts()) parts[name] = bytes;
  for (int r = 0; r < ranks; ++r) per_rank_total.push_back(rank_memory(cfg, ranks, r, o).total());
  const nlohmann::json out = {{"config", path},
                              {"parameters", params},
                              {"flat_parameters", P},
                              {"bf16_bytes", sizeof(Bf16Storage)},  // 2 in GPU builds, 4 in the CPU emulation
                              {"ranks", ranks},
                              {"device_memory_bytes", budget},
                              {"parts", parts},
                              {"total_bytes", mine.total()},
                              {"per_rank_total_bytes", per_rank_total},
                              {"fits", fits},
                              {"largest_micro_batch", best},
                              {"table", table}};
  std::ofstream f(json_path);
  f << out.dump(2) << "\n";
  if (!f) fail(json_path, "cannot write");
}
}  // namespace

void register_plan(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("plan", "memory per rank by part, the largest micro_batch that fits, zero × recompute");
  auto config = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto ranks = std::make_shared<int>(1);
  auto gib = std::make_shared<double>(0);
  auto json = std::make_shared<std::string>();
  cmd->add_option("config", *config, "run config (TOML)")->required();
  cmd->add_option("--set", *sets, "override a config key: section.key=value (repeatable)");
  cmd->add_option("--ranks", *ranks, "ranks (GPUs) the run would use")->capture_default_str();
  cmd->add_option("--device-memory", *gib,
                  "memory of one GPU (or one rank's share of a node), GiB; default: 80 on GPU builds, this machine's "
                  "available memory over the ranks on CPU builds");
  cmd->add_option("--json", *json, "also write the plan as JSON to this file");
  cmd->callback([=] { plan(*config, *sets, *ranks, *gib, *json); });
}

}  // namespace rewarm
