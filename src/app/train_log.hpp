// What a training run tells its user and its metrics file (rank 0; the other ranks say nothing):
// the lines at the start (what computes, where the weights come from, the ranks), a line per
// logged step, per evaluation and per checkpoint, the line that says why it stopped early, and
// the same numbers in run_dir/metrics.h5 (io/metrics.hpp). A failed metrics write ends every
// rank with one line naming the last good checkpoint (CheckpointManager::writing).
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "app/checkpoint_manager.hpp"
#include "app/progress.hpp"
#include "app/run_config.hpp"
#include "app/task_evaluation.hpp"
#include "io/metrics.hpp"

namespace rewarm {

struct StepResult {
  double loss = 0, grad_norm = 0, lr = 0;
  double data_seconds = 0;       // host time reading batches (this rank)
  double allreduce_seconds = 0;  // gradient and loss reduction over the ranks (this rank)
  // With Trainer::profile (fences between phases): forward, backward (with the gradient sum
  // over micro-batches) and optimizer (clip, AdamW, ZeRO-1 all-gather excluded) seconds.
  double forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
};

class TrainLog {
 public:
  // The start's lines beyond the compute line: empty ones are not printed.
  struct Start {
    std::string origin;       // "resuming from PATH (step N)", "weights from PATH (step N)"
    std::string attention;    // which attention runs and why, where the choice means something
    std::string parallel;     // the ranks, the ZeRO stage, the collectives (several ranks)
    std::string overlap_off;  // why [parallel] overlap is off where it was asked for
  };
  // Prints the start's lines and opens run_dir/metrics.h5, keeping its rows through
  // `resumed_step` (a resumed run) or none (resumed_step <= 0: a fresh run).
  TrainLog(const RunConfig& cfg, const Comm& comm, const CheckpointManager& writes, const std::string& config_text,
           const Metrics::Run& run, Index resumed_step, const Start& start);
  ~TrainLog();
  // Step `state.step` took `seconds`; logged every log_interval steps and where the run stops.
  void step(const TrainState& state, const StepResult& r, double seconds, bool last);
  void eval(const std::string& set, const TrainState& state, double loss, double seconds);
  void task(const std::string& name, const TrainState& state, const TaskScore& score, double seconds);
  void checkpoint(Index step, const std::string& path, double seconds);
  void stopped_before(Index step);            // a signal while the run started
  void stopped_after(Index step, bool signal);  // --stop-at, or a signal

 private:
  const RunConfig& cfg_;
  bool root_;
  const CheckpointManager& writes_;
  std::unique_ptr<Metrics> metrics_;  // rank 0
  Progress progress_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace rewarm
