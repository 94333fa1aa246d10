// rewarm: continual pre-training of GPT-NeoX models. `rewarm --help` lists the subcommands.
#include <cstdio>

#include "app/commands.hpp"
#include "core/error.hpp"
#include "core/version.hpp"
#include "io/hdf5.hpp"
#include "parallel/runtime.hpp"

int main(int argc, char** argv) {
  rewarm::h5::init_library();  // before MPI, so that a failed write cannot crash the exit
  // --kokkos-* options go to Kokkos, which only the computing commands start (after parsing,
  // so that --help, --version and the file commands never touch MPI or a device).
  rewarm::LaunchOptions launch;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) (std::string(argv[i]).rfind("--kokkos-", 0) == 0 ? launch.kokkos_args : args).push_back(argv[i]);
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed argument vector

  CLI::App app{"rewarm: continual pre-training of GPT-NeoX (Pythia) models with Kokkos", "rewarm"};
  app.require_subcommand(1);
  app.set_version_flag("--version", REWARM_VERSION);
  app.footer("Kokkos options (--kokkos-threads=N, --kokkos-device-id=N, ...) are passed to Kokkos by train, eval and bench.");
  rewarm::register_train(app, launch);
  rewarm::register_sweep(app, launch);
  rewarm::register_eval(app, launch);
  rewarm::register_info(app);
  rewarm::register_convert(app);
  rewarm::register_synth(app);
  rewarm::register_bench(app, launch);
  rewarm::register_tokenize(app);
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const rewarm::ExitStatus& s) {  // already reported
    return s.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rewarm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
