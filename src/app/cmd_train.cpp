// rewarm train CONFIG [--set key=value]...
#include "app/commands.hpp"
#include "app/trainer.hpp"

namespace rewarm {

void register_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train (or resume) the run a TOML config describes");
  auto config = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config, "run config (TOML)")->required();
  cmd->add_option("--set", *sets, "override a config key: section.key=value (repeatable)");
  cmd->callback([config, sets] {
    Trainer trainer(load_run_config(*config, *sets));
    trainer.train();
  });
}

}  // namespace rewarm
