// One function per subcommand file: registers the subcommand and its action on the CLI.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace rewarm {

// What main hands to the commands that start MPI and Kokkos.
struct LaunchOptions {
  std::vector<std::string> kokkos_args;  // --kokkos-* options of the command line
};

void register_train(CLI::App& app, const LaunchOptions& launch);
void register_sweep(CLI::App& app, const LaunchOptions& launch);
// `rewarm train CONFIG --set ... [--stop-at STEP]`, for train and sweep --task.
void run_training(const LaunchOptions& launch, const std::string& config, const std::vector<std::string>& sets,
                  long long stop_at);
void register_eval(CLI::App& app, const LaunchOptions& launch);
void register_bench(CLI::App& app, const LaunchOptions& launch);
void register_info(CLI::App& app);
void register_plan(CLI::App& app);  // needs no device
void register_convert(CLI::App& app);
void register_synth(CLI::App& app);
void register_tokenize(CLI::App& app);
}  // namespace rewarm
