// rewarm train CONFIG [--set key=value]... [--stop-at STEP]; under mpirun/srun, data-parallel.
#include "app/commands.hpp"
#include "app/trainer.hpp"
#include "parallel/runtime.hpp"

namespace rewarm {

void register_train(CLI::App& app, const LaunchOptions& launch) {
  auto* cmd = app.add_subcommand("train", "train (or resume) the run a TOML config describes");
  auto config = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config, "run config (TOML)")->required();
  auto stop_at = std::make_shared<Index>(-1);
  cmd->add_option("--set", *sets, "override a config key: section.key=value (repeatable)");
  cmd->add_option("--stop-at", *stop_at, "stop after this step, with a checkpoint (resume by rerunning)");
  cmd->callback([config, sets, stop_at, &launch] {
    bool stopped = false;
    run_on_device(launch.kokkos_args, [&](Comm& comm) {
      std::unique_ptr<Trainer> trainer;
      comm.agree([&] {
        auto cfg = load_run_config(*config, *sets);
        comm.set_gpu_aware(cfg.parallel.gpu_aware_mpi);
        trainer = std::make_unique<Trainer>(std::move(cfg), comm);
      });
      if (trainer->train(*stop_at) == Trainer::Stop::signal) stopped = true;
    });
    if (stopped) throw ExitStatus{kExitRequeue};
  });
}

}  // namespace rewarm
