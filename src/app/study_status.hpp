// Where every run of a study stands, read from the files alone (`rewarm sweep STUDY --status`):
// its run_dir lock, metrics and checkpoints, and the logs that scripts/run_study.sh
// (RUN_ROOT/logs/NAME.log) and the SLURM job scripts (RUN_ROOT/logs/<job>_<id>_<task>.out,
// found through RUN_ROOT/jobs.txt) write. No device, no MPI: it runs on a login node while the
// jobs run.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "app/study.hpp"

namespace rewarm {

struct RunStatus {
  std::string name;
  int stage = 0;
  // "not started", "running", "done", "failed", "stopped for requeue", "stopped"
  std::string state;
  std::string detail;  // the error line, the lock's holder, or how it stopped
  Index step = 0, total_steps = 0, checkpoint_step = -1;
  double train_loss = -1, tokens_per_second = -1;  // -1: none logged yet
  std::map<std::string, double> eval_loss;         // last loss of each eval set
  std::map<std::string, double> task_acc;          // last acc of each [[data.tasks]] task
};

std::vector<RunStatus> study_status(const Study& s);
void print_status(const Study& s, const std::vector<RunStatus>& runs);  // a table, one row a run
std::string status_json(const Study& s, const std::vector<RunStatus>& runs);

}  // namespace rewarm
