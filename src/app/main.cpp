// rewarm: continual pre-training of GPT-NeoX models. `rewarm --help` lists the subcommands.
#include <cstdio>

#include "app/commands.hpp"
#include "core/error.hpp"
#include "core/types.hpp"
#include "core/version.hpp"

int main(int argc, char** argv) {
  Kokkos::ScopeGuard kokkos(argc, argv);  // takes its --kokkos-* options out of argv
  CLI::App app{"rewarm: continual pre-training of GPT-NeoX (Pythia) models with Kokkos", "rewarm"};
  app.require_subcommand(1);
  app.set_version_flag("--version", REWARM_VERSION);
  rewarm::register_train(app);
  rewarm::register_eval(app);
  rewarm::register_info(app);
  rewarm::register_convert(app);
  rewarm::register_synth(app);
  rewarm::register_bench(app);
  rewarm::register_tokenize(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const rewarm::Error& e) {
    std::fprintf(stderr, "rewarm: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rewarm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
