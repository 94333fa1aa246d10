// rewarm eval CONFIG --checkpoint CKPT: loss and perplexity on every [[data.eval]] set.
#include <cmath>
#include <cstdio>

#include "app/commands.hpp"
#include "app/trainer.hpp"
#include "core/error.hpp"
#include "core/host_threads.hpp"
#include "parallel/runtime.hpp"

namespace rewarm {

void register_eval(CLI::App& app, const LaunchOptions& launch) {
  auto* cmd = app.add_subcommand("eval", "loss/perplexity of a checkpoint on every [[data.eval]] set");
  auto config = std::make_shared<std::string>();
  auto ckpt = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config, "run config (TOML)")->required();
  cmd->add_option("--checkpoint", *ckpt, "checkpoint to evaluate")->required();
  cmd->add_option("--set", *sets, "override a config key: section.key=value (repeatable)");
  cmd->callback([config, ckpt, sets, &launch] {
    run_on_device(launch.kokkos_args, [&](Comm& comm) {
      std::unique_ptr<Trainer> trainer;
      comm.agree([&] {
        auto cfg = load_run_config(*config, *sets);
        if (cfg.data.eval.empty()) fail(*config, "has no [[data.eval]] set");
        comm.set_gpu_aware(cfg.parallel.gpu_aware_mpi);
        trainer = std::make_unique<Trainer>(std::move(cfg), comm, Trainer::Purpose::eval, *ckpt);
      });
      if (comm.root()) std::fprintf(stderr, "rewarm: compute: %s\n", compute_description().c_str());
      for (const auto& [name, loss] : trainer->evaluate())
        if (comm.root()) std::printf("%-16s loss %.9g  perplexity %.9g\n", name.c_str(), loss, std::exp(loss));
    });
  });
}

}  // namespace rewarm
