// rewarm sweep STUDY [--budget NAME] [--set key=value]... [--list | --print-command NAME |
//   --stages | --manifest FILE | --stage K --task I | --task N]
#include <cstdio>
#include <algorithm>
#include <fstream>
#include <set>

#include "app/commands.hpp"
#include "app/study.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace rewarm {

static void list(const Study& s) {
  std::printf("%s: %zu runs in %d stage%s; base %s; run_root %s%s\n", s.path.c_str(), s.runs.size(), s.stages,
              s.stages == 1 ? "" : "s", s.base.c_str(), s.run_root.c_str(),
              s.budget.empty() ? "" : ("; budget " + s.budget).c_str());
  for (const auto& r : s.runs) {
    std::string tags, after;
    for (const auto& [k, v] : r.tags) tags += (tags.empty() ? "" : " ") + k + "=" + v;
    for (const auto& a : r.after) after += (after.empty() ? "" : ",") + a;
    std::printf("\n[%d] %s  role %s%s%s, %lld steps\n", r.stage, r.name.c_str(), r.role.c_str(),
                tags.empty() ? "" : (", " + tags).c_str(), after.empty() ? "" : (", after " + after).c_str(),
                static_cast<long long>(r.config.schedule.total_steps));
    for (const auto& d : s.differences(r)) std::printf("    %s\n", d.c_str());
  }
}

void register_sweep(CLI::App& app, const LaunchOptions& launch) {
  auto* cmd = app.add_subcommand("sweep", "list, plan and run the runs of a study (a base config and --set variants)");
  auto study = std::make_shared<std::string>();
  auto budget = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto print = std::make_shared<std::string>();
  auto manifest = std::make_shared<std::string>();
  auto stage = std::make_shared<int>(-1);
  auto task = std::make_shared<int>(-1);
  auto flags = std::make_shared<std::pair<bool, bool>>(false, false);  // --list, --stages
  cmd->add_option("study", *study, "study file (TOML)")->required();
  cmd->add_option("--budget", *budget, "apply this entry of the study's [budgets] to every run");
  cmd->add_option("--set", *sets, "override a config key in every run: section.key=value (repeatable)");
  cmd->add_flag("--list", flags->first, "the runs, their stages, roles, tags and differences from the base (default)");
  cmd->add_option("--print-command", *print, "the exact `rewarm train` line of run NAME");
  cmd->add_flag("--stages", flags->second,
                "one line per stage, for job arrays: its number, its run count, and the tasks of earlier stages its "
                "runs start after, as STAGE:TASK,... (- for none)");
  auto run_root = std::make_shared<bool>(false);
  cmd->add_flag("--print-run-root", *run_root, "the directory the study's runs live in");
  cmd->add_option("--manifest", *manifest, "write the study's runs, roles, tags and run dirs as JSON (for postprocess)");
  cmd->add_option("--stage", *stage, "with --task: the stage the task number counts in");
  cmd->add_option("--task", *task, "train run TASK (of --stage, or of all runs in stage order), as `rewarm train`");
  auto task_name = std::make_shared<int>(-1);
  cmd->add_option("--task-name", *task_name, "the name of run TASK (of --stage, or of all runs)");
  cmd->callback([=, &launch] {
    const Study s = load_study(*study, *sets, *budget);
    if (!manifest->empty()) {
      AtomicFile out(*manifest);
      std::ofstream(out.tmp()) << s.manifest_json() << "\n";
      out.commit();
    }
    if (!print->empty()) std::printf("%s\n", s.command(s.run(*print)).c_str());
    if (*run_root) std::printf("%s\n", s.run_root.c_str());
    if (flags->second)
      for (int k = 0; k < s.stages; ++k) {
        std::set<std::pair<int, int>> parents;  // (stage, task) of every run this stage waits for
        for (const auto* r : s.stage(k))
          for (const auto& a : r->after) {
            const auto& p = s.run(a);
            const auto siblings = s.stage(p.stage);
            parents.emplace(p.stage, int(std::find(siblings.begin(), siblings.end(), &p) - siblings.begin()));
          }
        std::string deps;
        for (const auto& [st, t] : parents) deps += (deps.empty() ? "" : ",") + std::to_string(st) + ":" + std::to_string(t);
        std::printf("%d %zu %s\n", k, s.stage(k).size(), deps.empty() ? "-" : deps.c_str());
      }
    auto task_run = [&](int t) -> const StudyRun& {
      std::vector<const StudyRun*> runs;
      if (*stage >= 0) {
        runs = s.stage(*stage);
      } else {
        for (const auto& r : s.runs) runs.push_back(&r);
      }
      if (t >= int(runs.size()))
        fail(*study, "task " + std::to_string(t) + " is past the " + std::to_string(runs.size()) + " runs" +
                         (*stage >= 0 ? " of stage " + std::to_string(*stage) : ""));
      return *runs[std::size_t(t)];
    };
    if (*task_name >= 0) std::printf("%s\n", task_run(*task_name).name.c_str());
    if (*task >= 0) {
      const auto& r = task_run(*task);
      std::fprintf(stderr, "rewarm: study %s, run %s (stage %d)\n", s.name.c_str(), r.name.c_str(), r.stage);
      run_training(launch, s.base, r.overrides, -1);
    } else if (*stage >= 0 && *task_name < 0) {
      fail(*study, "--stage goes with --task or --task-name");
    }
    if (flags->first ||
        (print->empty() && !flags->second && manifest->empty() && *task < 0 && *task_name < 0 && !*run_root))
      list(s);
  });
}

}  // namespace rewarm
