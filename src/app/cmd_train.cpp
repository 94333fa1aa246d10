// rewarm train CONFIG [--set key=value]...
#include "app/commands.hpp"
#include "app/trainer.hpp"

namespace rewarm {

void register_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train (or resume) the run a TOML config describes");
  auto config = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config, "run config (TOML)")->required();
  auto stop_at = std::make_shared<Index>(-1);
  cmd->add_option("--set", *sets, "override a config key: section.key=value (repeatable)");
  cmd->add_option("--stop-at", *stop_at, "stop after this step, with a checkpoint (resume by rerunning)");
  cmd->callback([config, sets, stop_at] {
    Trainer trainer(load_run_config(*config, *sets));
    trainer.train(*stop_at);
  });
}

}  // namespace rewarm
