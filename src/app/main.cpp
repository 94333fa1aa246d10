// rewarm: continual pre-training of GPT-NeoX models. `rewarm --help` lists the subcommands.
#include <algorithm>
#include <cstdio>

#include "app/commands.hpp"
#include "app/stop_signals.hpp"
#include "core/error.hpp"
#include "core/host_threads.hpp"
#include "core/version.hpp"
#include "io/hdf5.hpp"
#include "parallel/runtime.hpp"

// One line for a command-line mistake, exit status 1: what was wrong, a close match if there is
// one, and where the help is. (CLI11 prints two lines and exits with a status of its own.)
static int command_line_error(const CLI::App& app, const CLI::ParseError& e, const std::vector<std::string>& args) {
  const CLI::App* sub = &app;  // the deepest command the user named, and the words naming it
  std::vector<std::string> path;
  for (bool deeper = true; deeper;) {
    deeper = false;
    for (const auto* s : sub->get_subcommands()) sub = s, deeper = true, path.push_back(s->get_name());
  }
  std::string name = "rewarm";
  for (const auto& p : path) name += " " + p;
  std::vector<std::string> commands, options;
  for (const auto* s : sub->get_subcommands({})) commands.push_back(s->get_name());
  for (const auto* o : sub->get_options())
    for (const auto& l : o->get_lnames()) options.push_back("--" + l);
  std::string what = e.what();
  std::size_t named = 0;
  for (const auto& a : args) {  // the first word that is not one of this command's
    if (named < path.size() && a == path[named]) {
      ++named;
      continue;
    }
    if (a.rfind("-", 0) == 0) {
      const std::string flag = a.substr(0, a.find('='));
      if (std::find(options.begin(), options.end(), flag) == options.end() && flag != "--help" && flag != "-h") {
        what = "unknown option " + flag + rewarm::did_you_mean(flag, options);
        break;
      }
    } else if (!commands.empty() && std::find(commands.begin(), commands.end(), a) == commands.end()) {
      what = "unknown command '" + a + "'" + rewarm::did_you_mean(a, commands);
      break;
    }
  }
  if (what == "A subcommand is required") what = "a command is required";
  std::fprintf(stderr, "rewarm: error: %s; `%s --help` says more\n", what.c_str(), name.c_str());
  return 1;
}

// What a command line asks for, read before anything starts: a run that trains takes the stop
// signals (app/stop_signals.hpp); one that computes gets its OpenMP settings (core/host_threads.hpp).
enum class Kind { trains, computes, other };
static Kind command_kind(int argc, char** argv) {
  std::string command;
  bool runs_one = false;  // sweep --run NAME / --task N
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (command.empty() && a.rfind("-", 0) != 0) command = a;
    if (a.rfind("--run", 0) == 0 || a.rfind("--task", 0) == 0) runs_one = true;
  }
  if (command == "train" || (command == "sweep" && runs_one)) return Kind::trains;
  return command == "eval" || command == "bench" ? Kind::computes : Kind::other;
}

int main(int argc, char** argv) {
  const Kind kind = command_kind(argc, argv);
  if (kind != Kind::other) rewarm::settle_openmp_environment(argv);  // may start this program again
  if (kind == Kind::trains) rewarm::install_stop_signals();            // before anything slow
  rewarm::h5::init_library();  // before MPI, so that a failed write cannot crash the exit
  // --kokkos-* options go to Kokkos, which only the computing commands start (after parsing,
  // so that --help, --version and the file commands never touch MPI or a device).
  rewarm::LaunchOptions launch;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) (std::string(argv[i]).rfind("--kokkos-", 0) == 0 ? launch.kokkos_args : args).push_back(argv[i]);
  const std::vector<std::string> in_order = args;
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed argument vector

  CLI::App app{"rewarm: continual pre-training of GPT-NeoX (Pythia) models with Kokkos", "rewarm"};
  app.require_subcommand(1);
  app.set_version_flag("--version", REWARM_VERSION);
  app.footer("Kokkos options (--kokkos-threads=N, --kokkos-device-id=N, ...) are passed to Kokkos by train, eval and bench.");
  rewarm::register_train(app, launch);
  rewarm::register_sweep(app, launch);
  rewarm::register_eval(app, launch);
  rewarm::register_info(app);
  rewarm::register_plan(app);
  rewarm::register_convert(app);
  rewarm::register_synth(app);
  rewarm::register_bench(app, launch);
  rewarm::register_tokenize(app);
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return command_line_error(app, e, in_order);
  } catch (const rewarm::ExitStatus& s) {  // already reported
    return s.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rewarm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
