// rewarm eval CONFIG --checkpoint CKPT: loss and perplexity on every [[data.eval]] set, and the
// score of every [[data.tasks]] task (--scores FILE: each choice's log-likelihood, as JSON).
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "app/trainer.hpp"
#include "core/error.hpp"
#include "core/host_threads.hpp"
#include "io/atomic_file.hpp"
#include "parallel/runtime.hpp"

namespace rewarm {

void register_eval(CLI::App& app, const LaunchOptions& launch) {
  auto* cmd = app.add_subcommand("eval", "loss/perplexity of a checkpoint on every [[data.eval]] set, and its [[data.tasks]] scores");
  auto config = std::make_shared<std::string>();
  auto ckpt = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config, "run config (TOML)")->required();
  cmd->add_option("--checkpoint", *ckpt, "checkpoint to evaluate")->required();
  cmd->add_option("--set", *sets, "override a config key: section.key=value (repeatable)");
  auto scores = std::make_shared<std::string>();
  cmd->add_option("--scores", *scores,
                  "write every task's per-choice log-likelihoods and greedy flags here (JSON)");
  cmd->callback([config, ckpt, sets, scores, &launch] {
    run_on_device(launch.kokkos_args, [&](Comm& comm) {
      std::unique_ptr<Trainer> trainer;
      comm.agree([&] {
        auto cfg = load_run_config(*config, *sets);
        if (cfg.data.eval.empty() && cfg.data.tasks.empty()) fail(*config, "has no [[data.eval]] set and no [[data.tasks]]");
        comm.set_gpu_aware(cfg.parallel.gpu_aware_mpi);
        trainer = std::make_unique<Trainer>(std::move(cfg), comm, Trainer::Purpose::eval, *ckpt);
      });
      if (comm.root()) std::fprintf(stderr, "rewarm: compute: %s\n", compute_description().c_str());
      for (const auto& [name, loss] : trainer->evaluate())
        if (comm.root()) std::printf("%-16s loss %.9g  perplexity %.9g\n", name.c_str(), loss, std::exp(loss));
      nlohmann::json out = nlohmann::json::object();
      for (const auto& [name, s] : trainer->evaluate_tasks()) {
        if (comm.root()) {
          std::printf("%-16s acc %.6f", name.c_str(), s.acc);
          if (!s.single_choice) std::printf("  acc_norm %.6f", s.acc_norm);
          std::printf("  (%lld examples)\n", static_cast<long long>(s.examples));
        }
        out[name] = {{"examples", s.examples}, {"acc", s.acc}, {"loglikelihood", s.choice_loglik},
                     {"greedy", s.choice_greedy}};
        if (!s.single_choice) out[name]["acc_norm"] = s.acc_norm;
      }
      if (!scores->empty() && comm.root()) write_text_file(*scores, out.dump(1) + "\n");
    });
  });
}

}  // namespace rewarm
