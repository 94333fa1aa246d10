// rewarm train CONFIG [--set key=value]... [--stop-at STEP]; under mpirun/srun, data-parallel.
#include "app/commands.hpp"
#include "app/trainer.hpp"
#include "parallel/runtime.hpp"

namespace rewarm {

void run_training(const LaunchOptions& launch, const std::string& config, const std::vector<std::string>& sets,
                  long long stop_at) {
  bool signalled = false;
  run_on_device(launch.kokkos_args, [&](Comm& comm) {
    std::unique_ptr<Trainer> trainer;
    comm.agree([&] {
      auto cfg = load_run_config(config, sets);
      comm.set_gpu_aware(cfg.parallel.gpu_aware_mpi);
      trainer = std::make_unique<Trainer>(std::move(cfg), comm, Trainer::Purpose::train);
    });
    signalled = trainer->train(stop_at) == Trainer::Stop::signal;
  });
  if (signalled) throw ExitStatus{kExitRequeue};
}

void register_train(CLI::App& app, const LaunchOptions& launch) {
  auto* cmd = app.add_subcommand("train", "train (or resume) the run a TOML config describes");
  auto config = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config, "run config (TOML)")->required();
  auto stop_at = std::make_shared<Index>(-1);
  cmd->add_option("--set", *sets, "override a config key: section.key=value (repeatable)");
  cmd->add_option("--stop-at", *stop_at, "stop after this step, with a checkpoint (resume by rerunning)");
  cmd->footer("Exit status: 0 when the run is done or stopped by --stop-at; 75 when SIGUSR1/SIGTERM stopped it "
              "after a checkpoint (rerun, or requeue the job, to resume); 1 on an error.");
  cmd->callback([config, sets, stop_at, &launch] { run_training(launch, *config, *sets, *stop_at); });
}

}  // namespace rewarm
