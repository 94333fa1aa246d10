// One function per subcommand file: registers the subcommand and its action on the CLI.
#pragma once
#include <CLI/CLI.hpp>

namespace rewarm {
void register_train(CLI::App& app);
void register_eval(CLI::App& app);
void register_info(CLI::App& app);
void register_convert(CLI::App& app);
void register_synth(CLI::App& app);
void register_bench(CLI::App& app);
void register_tokenize(CLI::App& app);
}  // namespace rewarm
