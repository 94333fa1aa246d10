// A study (inputs/studies/*.toml, docs/studies.md): a base run config and named runs, each a
// list of --set overrides, grids of runs over axes of values, and the dependencies between runs
// (a run that starts from another run's final checkpoint). `rewarm sweep` lists it, turns it
// into `rewarm train` commands and SLURM job-array stages, and runs one of its runs.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "app/run_config.hpp"

namespace rewarm {

struct StudyRun {
  std::string name;
  std::string role;                           // pretrain, rewarm, constant, scratch, control, replay, ...
  std::map<std::string, std::string> tags;    // axis values and given tags: what figures group by
  std::vector<std::string> overrides;         // --set values in order; run_dir last
  std::vector<std::string> after;             // runs that must end first (their checkpoints start this one)
  int stage = 0;                              // 0: depends on nothing; else 1 + its parents' largest stage
  RunConfig config;                           // the resolved run config
};

struct Study {
  std::string path;                    // the study file
  std::string name, description;
  std::string base;                    // the base run config, as a path from the working directory
  std::string run_root;                // run NAME lives in run_root/NAME
  std::string upstream, downstream;    // eval set names: forgetting is measured on the first, gain on the second
  std::string budget;                  // the [budgets] entry applied, if any
  std::vector<StudyRun> runs;          // by stage, then in file order
  int stages = 0;

  const StudyRun& run(const std::string& name) const;
  std::vector<const StudyRun*> stage(int k) const;
  std::string command(const StudyRun& r) const;  // the exact `rewarm train` line, shell-quoted
  std::vector<std::string> differences(const StudyRun& r) const;  // from the base config, run_dir aside
  std::string manifest_json() const;             // what postprocess reads: runs, roles, tags, run dirs
};

// Reads and resolves a study: every run's config is parsed and validated (one error line naming
// the study file, the run and the key). `overrides` apply to every run; `budget` selects a
// [budgets] entry ("" for none), applied after each run's own overrides.
// run_root, when not empty, replaces the study's own (the same study again elsewhere: another seed).
Study load_study(const std::string& path, const std::vector<std::string>& overrides, const std::string& budget,
                 const std::string& run_root = "");

}  // namespace rewarm
