#include "app/study_status.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/progress.hpp"
#include "core/error.hpp"
#include "io/checkpoint.hpp"
#include "io/metrics.hpp"
#include "io/run_dir_lock.hpp"

namespace rewarm {
namespace fs = std::filesystem;

namespace {

// The runs' SLURM tasks, "NAME JOBID_TASK" per line of RUN_ROOT/jobs.txt.
std::map<std::string, std::string> slurm_tasks(const std::string& run_root) {
  std::map<std::string, std::string> out;
  std::ifstream in(fs::path(run_root) / "jobs.txt");
  for (std::string name, task; in >> name >> task;) out[name] = task;
  return out;
}

// The newest log of a run: run_study.sh's NAME.log, or its SLURM task's <job>_JOBID_TASK.out.
std::string newest_log(const std::string& run_root, const std::string& name, const std::string& task) {
  const fs::path logs = fs::path(run_root) / "logs";
  std::vector<fs::path> found;
  if (fs::exists(logs / (name + ".log"))) found.push_back(logs / (name + ".log"));
  std::error_code ec;
  if (!task.empty())
    for (const auto& e : fs::directory_iterator(logs, ec)) {
      const std::string f = e.path().filename().string(), tail = "_" + task + ".out";
      if (f.size() > tail.size() && f.compare(f.size() - tail.size(), tail.size(), tail) == 0) found.push_back(e.path());
    }
  if (found.empty()) return "";
  return std::max_element(found.begin(), found.end(), [](const fs::path& a, const fs::path& b) {
           return fs::last_write_time(a) < fs::last_write_time(b);
         })->string();
}

// What the log says of the run's last attempt: "failed" (and the error line), "stopped for
// requeue", or "" when it says neither.
std::pair<std::string, std::string> log_verdict(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);)
    if (l.rfind("rewarm: study ", 0) == 0) lines.clear();  // an attempt starts: the earlier ones are over
    else lines.push_back(l);
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (it->rfind("rewarm: error: ", 0) == 0) return {"failed", it->substr(15)};
    if (it->find("requeueing") != std::string::npos || it->find("(signal: time limit near)") != std::string::npos)
      return {"stopped for requeue", *it};
  }
  return {"", ""};
}

std::string status_file(const std::string& run_root, const std::string& name) {  // run_study.sh's ok/failed
  std::ifstream in(fs::path(run_root) / "logs" / (name + ".status"));
  std::string word;
  in >> word;
  return word;
}

}  // namespace

std::vector<RunStatus> study_status(const Study& s) {
  const auto tasks = slurm_tasks(s.run_root);
  const double stale = lock_stale_seconds();
  std::vector<RunStatus> out;
  for (const auto& r : s.runs) {
    RunStatus st;
    st.name = r.name, st.stage = r.stage, st.total_steps = r.config.total_steps();
    const std::string dir = r.config.run_dir, metrics = (fs::path(dir) / "metrics.h5").string();
    const auto checkpoints = list_checkpoints(dir);
    if (!checkpoints.empty()) st.checkpoint_step = checkpoint_step(checkpoints.back());
    if (fs::exists(metrics)) {
      try {
        for (const auto& [group, g] : read_metrics(metrics)) {
          if (g.step.empty()) continue;
          if (group == "train") {
            st.step = g.step.back(), st.train_loss = g.values.at("loss").back();
            if (g.values.count("tokens_per_second")) st.tokens_per_second = g.values.at("tokens_per_second").back();
          } else if (group.rfind("eval/", 0) == 0) {
            st.eval_loss[group.substr(5)] = g.values.at("loss").back();
          } else if (group.rfind("tasks/", 0) == 0) {
            st.task_acc[group.substr(6)] = g.values.at("acc").back();
          }
        }
      } catch (const Error& e) {
        st.detail = e.what();  // an unreadable metrics file is worth saying, not a reason to stop
      }
    }
    st.step = std::max(st.step, st.checkpoint_step);
    const LockState lock = read_lock_state(dir, stale);
    const auto task = tasks.count(r.name) ? tasks.at(r.name) : "";
    const auto log = newest_log(s.run_root, r.name, task);
    const auto [said, line] = log.empty() ? std::pair<std::string, std::string>{} : log_verdict(log);
    if (lock.alive) {
      st.state = "running", st.detail = lock.holder;
    } else if (st.total_steps > 0 && st.checkpoint_step >= st.total_steps) {
      st.state = "done";
    } else if (!said.empty()) {
      st.state = said, st.detail = line;
    } else if (status_file(s.run_root, r.name) == "failed") {
      st.state = "failed", st.detail = "see " + log;
    } else if (fs::exists(metrics) || st.checkpoint_step >= 0) {
      st.state = "stopped";
      st.detail = lock.present ? "its process is gone (" + lock.gone + "): rerun to resume" : "rerun to resume";
    } else {
      st.state = "not started";
      if (!task.empty()) st.detail = "SLURM task " + task;
    }
    out.push_back(st);
  }
  return out;
}

void print_status(const Study& s, const std::vector<RunStatus>& runs) {
  std::vector<std::string> evals;  // the study's upstream and downstream sets, else every set logged
  for (const auto& e : {s.downstream, s.upstream})
    if (!e.empty()) evals.push_back(e);
  if (evals.empty())
    for (const auto& r : runs)
      for (const auto& [set, loss] : r.eval_loss)
        if (std::find(evals.begin(), evals.end(), set) == evals.end()) evals.push_back(set);
  std::vector<std::string> tasks;  // every task logged: its accuracy
  for (const auto& r : runs)
    for (const auto& [task, acc] : r.task_acc)
      if (std::find(tasks.begin(), tasks.end(), task) == tasks.end()) tasks.push_back(task);
  std::size_t w = 4, ws = 5, wt = 4;  // widths: run, state, step
  auto step_of = [](const RunStatus& r) { return std::to_string(r.step) + "/" + std::to_string(r.total_steps); };
  for (const auto& r : runs) w = std::max(w, r.name.size()), ws = std::max(ws, r.state.size()), wt = std::max(wt, step_of(r).size());
  std::map<std::string, int> count;
  for (const auto& r : runs) ++count[r.state];
  std::string summary;
  for (const auto& [state, n] : count) summary += (summary.empty() ? "" : ", ") + std::to_string(n) + " " + state;
  std::printf("study %s: %zu runs in %s (%s)\n", s.name.c_str(), runs.size(), s.run_root.c_str(), summary.c_str());
  std::printf("%-*s stage  %-*s  %*s  %10s", int(w), "run", int(ws), "state", int(wt), "step", "train loss");
  for (const auto& e : evals) std::printf("  %10.10s", e.c_str());
  for (const auto& t : tasks) std::printf("  %10.10s", (t + " acc").c_str());
  std::printf("  %8s  %s\n", "tok/s", "detail");
  auto number = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, v < 0 ? "-" : "%.4f", v);
    return std::string(b);
  };
  for (const auto& r : runs) {
    std::printf("%-*s %5d  %-*s  %*s  %10s", int(w), r.name.c_str(), r.stage, int(ws), r.state.c_str(), int(wt),
                step_of(r).c_str(), number(r.train_loss).c_str());
    for (const auto& e : evals) std::printf("  %10s", number(r.eval_loss.count(e) ? r.eval_loss.at(e) : -1).c_str());
    for (const auto& t : tasks) std::printf("  %10s", number(r.task_acc.count(t) ? r.task_acc.at(t) : -1).c_str());
    std::printf("  %8s  %s\n", r.tokens_per_second < 0 ? "-" : format_si(r.tokens_per_second).c_str(), r.detail.c_str());
  }
}

std::string status_json(const Study& s, const std::vector<RunStatus>& runs) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : runs) {
    auto nullable = [](double v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
    nlohmann::json evals = nlohmann::json::object();
    for (const auto& [set, loss] : r.eval_loss) evals[set] = loss;
    nlohmann::json task_acc = nlohmann::json::object();
    for (const auto& [task, acc] : r.task_acc) task_acc[task] = acc;
    rows.push_back({{"name", r.name},
                    {"stage", r.stage},
                    {"state", r.state},
                    {"detail", r.detail},
                    {"step", r.step},
                    {"total_steps", r.total_steps},
                    {"checkpoint_step", r.checkpoint_step < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.checkpoint_step)},
                    {"train_loss", nullable(r.train_loss)},
                    {"eval_loss", evals},
                    {"task_acc", task_acc},
                    {"tokens_per_second", nullable(r.tokens_per_second)}});
  }
  return nlohmann::json({{"format", "rewarm-study-status"}, {"study", s.name}, {"run_root", s.run_root}, {"runs", rows}})
      .dump(2);
}

}  // namespace rewarm
