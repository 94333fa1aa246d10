// rewarm sweep STUDY [--budget NAME] [--set key=value]... [--run-root DIR] [--list | --print-command NAME | --plan |
//   --print-run-root | --manifest FILE | --status [--json] | --run NAME | --task N]
#include <cstdio>
#include <algorithm>
#include <array>
#include <set>

#include "app/commands.hpp"
#include "app/study.hpp"
#include "app/study_status.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace rewarm {

static void list(const Study& s) {
  std::printf("%s: %zu runs in %d stage%s; base %s; run_root %s%s\n", s.path.c_str(), s.runs.size(), s.stages,
              s.stages == 1 ? "" : "s", s.base.c_str(), s.run_root.c_str(),
              s.budget.empty() ? "" : ("; budget " + s.budget).c_str());
  for (const auto& r : s.runs) {
    std::string tags;
    for (const auto& [k, v] : r.tags) tags += (tags.empty() ? "" : " ") + k + "=" + v;
    const auto after = join(r.after, ",");
    std::printf("\n[%d] %s  role %s%s%s, %lld steps\n", r.stage, r.name.c_str(), r.role.c_str(),
                tags.empty() ? "" : (", " + tags).c_str(), after.empty() ? "" : (", after " + after).c_str(),
                static_cast<long long>(r.config.total_steps()));
    for (const auto& d : s.differences(r)) std::printf("    %s\n", d.c_str());
  }
}

// Job-array groups: the runs of a stage that start after the same runs, one line each:
// "STAGE PARENTS RUNS", names comma-separated, "-" for no parent.
static void plan(const Study& s) {
  for (int k = 0; k < s.stages; ++k) {
    std::vector<std::pair<std::string, std::string>> groups;  // parents, runs (in run order)
    for (const auto* r : s.stage(k)) {
      std::vector<std::string> after = r->after;
      std::sort(after.begin(), after.end());
      after.erase(std::unique(after.begin(), after.end()), after.end());
      const auto parents = after.empty() ? std::string("-") : join(after, ",");
      auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == parents; });
      if (it == groups.end()) groups.emplace_back(parents, r->name);
      else it->second += "," + r->name;
    }
    for (const auto& [parents, names] : groups) std::printf("%d %s %s\n", k, parents.c_str(), names.c_str());
  }
}

void register_sweep(CLI::App& app, const LaunchOptions& launch) {
  auto* cmd = app.add_subcommand("sweep", "list, plan and run the runs of a study (a base config and --set variants)");
  auto study = std::make_shared<std::string>();
  auto budget = std::make_shared<std::string>();
  auto run_root = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto print = std::make_shared<std::string>();
  auto manifest = std::make_shared<std::string>();
  auto run = std::make_shared<std::string>();
  auto task = std::make_shared<int>(-1);
  auto flags = std::make_shared<std::array<bool, 5>>();  // --list, --plan, --print-run-root, --status, --json
  cmd->add_option("study", *study, "study file (TOML)")->required();
  cmd->add_option("--budget", *budget, "apply this entry of the study's [budgets] to every run");
  cmd->add_option("--set", *sets, "override a config key in every run: section.key=value (repeatable)");
  cmd->add_option("--run-root", *run_root, "the runs live in DIR instead of the study's run_root (e.g. another seed)");
  cmd->add_flag("--list", (*flags)[0], "the runs, their stages, roles, tags and differences from the base (default)");
  cmd->add_option("--print-command", *print, "the exact `rewarm train` line of run NAME");
  cmd->add_flag("--plan", (*flags)[1],
                "job-array groups, one per line: STAGE PARENTS RUNS (the runs of a stage that start after the same "
                "runs; names comma-separated, - for none)");
  cmd->add_flag("--print-run-root", (*flags)[2], "the directory the study's runs live in");
  cmd->add_option("--manifest", *manifest, "write the study's runs, roles, tags and run dirs as JSON (for postprocess)");
  cmd->add_flag("--status", (*flags)[3],
                "where every run stands: state (not started, running, done, failed, stopped for requeue, stopped), "
                "step, last losses, tokens/s; from the run dirs and logs alone (a login node will do)");
  cmd->add_flag("--json", (*flags)[4], "with --status: the same as JSON");
  cmd->add_option("--run", *run, "train run NAME, as `rewarm train` would (under srun: data-parallel)");
  cmd->add_option("--task", *task, "train the TASK-th run (from 0, in stage order)");
  cmd->callback([=, &launch] {
    const Study s = load_study(*study, *sets, *budget, *run_root);
    if (!manifest->empty()) {
      write_text_file(*manifest, s.manifest_json() + "\n");
    }
    if (!print->empty()) std::printf("%s\n", s.command(s.run(*print)).c_str());
    if ((*flags)[2]) std::printf("%s\n", s.run_root.c_str());
    if ((*flags)[1]) plan(s);
    if ((*flags)[4] && !(*flags)[3]) fail("--json", "goes with --status");
    if ((*flags)[3]) {
      const auto runs = study_status(s);
      if ((*flags)[4])
        std::printf("%s\n", status_json(s, runs).c_str());
      else
        print_status(s, runs);
    }
    if (*task >= int(s.runs.size()))
      fail(*study, "task " + std::to_string(*task) + " is past its " + std::to_string(s.runs.size()) + " runs");
    const StudyRun* r = !run->empty() ? &s.run(*run) : *task >= 0 ? &s.runs[std::size_t(*task)] : nullptr;
    if (r) {
      std::fprintf(stderr, "rewarm: study %s, run %s (stage %d)\n", s.name.c_str(), r->name.c_str(), r->stage);
      run_training(launch, s.base, r->overrides, -1);
    }
    if ((*flags)[0] || (print->empty() && manifest->empty() && !r && !(*flags)[1] && !(*flags)[2] && !(*flags)[3]))
      list(s);
  });
}

}  // namespace rewarm
