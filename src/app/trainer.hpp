// The training loop: data, model, AdamW, schedule, evaluation, metrics and checkpoints, on one
// rank or data-parallel over the ranks of `comm`. A step reads as llm.c's does: the step's
// samples read, then per micro-batch its batch staged and the forward and backward pass, then
// the gradient reduced over micro-batches and ranks, clipped, AdamW, the update spread. How the
// ranks share the work (every ZeRO stage) is DataParallel's alone; the log, the checkpoints and
// evaluation are TrainLog's, CheckpointManager's and Evaluation's.
//
// Each optimizer step's global_batch samples are drawn by every rank (the stream is a pure
// function of the seed and the per-set counts), and each rank reads its share. Rank 0 writes
// checkpoints and metrics; the checkpoint always holds the full state, so a run resumes on any
// rank count.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "app/checkpoint_manager.hpp"
#include "app/device_batch.hpp"
#include "app/evaluation.hpp"
#include "app/run_config.hpp"
#include "app/train_log.hpp"
#include "data/mixture.hpp"
#include "io/checkpoint.hpp"
#include "io/run_dir_lock.hpp"
#include "model/attention_choice.hpp"
#include "model/gpt.hpp"
#include "parallel/comm.hpp"
#include "parallel/data_parallel.hpp"

namespace rewarm {

class Trainer {
 public:
  // What the trainer is for: train holds the run_dir lock (rank 0), resumes from its newest
  // checkpoint and opens the training and eval sets; eval opens the eval sets and takes its
  // weights from `weights`; bench opens the training sets and resumes and writes nothing.
  enum class Purpose { train, eval, bench };
  // Checks every input on every rank (the config's checkpoint, every data set, the memory
  // estimate) before it allocates anything, then sets up the model from the newest checkpoint
  // in run_dir, else from init.from (or `weights`). Call inside comm.agree().
  Trainer(RunConfig cfg, Comm& comm, Purpose purpose, const std::string& weights = "");
  ~Trainer();
  // Trains to schedule.total_steps, or stops after step `stop_at` (> 0) with a checkpoint, so a
  // job with a time limit can end cleanly and the next one resume. A failed write (checkpoint
  // or metrics) ends every rank with one line naming the file, the cause and the last good
  // checkpoint.
  // SIGUSR1 or SIGTERM (a job near its time limit) on any rank: every rank finishes the step,
  // the checkpoint is written, and train() returns Stop::signal (exit status 75: requeue me).
  // One that came while the run started (app/stop_signals) stops it before its first step.
  enum class Stop { finished, stop_at, signal };
  Stop train(Index stop_at = -1);
  // One optimizer step (benchmarks time it).
  StepResult step();
  // Mean loss per token of every eval set (first max_sequences windows, in order).
  std::map<std::string, double> evaluate();
  // Every [[data.tasks]] task's score, in config order.
  std::vector<std::pair<std::string, TaskScore>> evaluate_tasks();
  const RunConfig& config() const { return cfg_; }
  const TrainState& state() const { return state_; }
  // Bytes of AdamW moments this rank holds (all of them, or its ZeRO slice).
  std::size_t optimizer_bytes() const { return 2 * sizeof(float) * std::size_t(dp_->owned_count()); }
  // Bytes this rank has handed to the gradient and parameter collectives (MPI and NCCL/RCCL).
  std::int64_t communication_bytes() const { return dp_->communication_bytes(); }
  // Fence between the phases of step() and time each (benchmarks; off in training).
  void set_profile(bool on) { profile_ = model_->timing.on = on; }
  const Gpt<float>& model() const { return *model_; }
  // How the model computes (precision, attention, workspace), as it was made.
  GptOptions model_options() const { return footprint(false).options; }
  // The attention this run computes with, and why ([precision] attention).
  const AttentionChoice& attention() const { return attention_; }
  Index micro_batches_per_step() const { return dp_->micro_batches(); }

 private:
  struct Footprint {
    GptOptions options;
    double need = 0;           // bytes this rank (host: this node's ranks) will allocate
    std::string what, advice;  // for the messages
  };
  Footprint footprint(bool full) const;
  void open_train_data();     // opens and checks every [[data.train]] set
  void set_train_position(const std::string& stored_config);  // the sample stream where state_ left it
  void allocate(const Footprint& fit);
  void read_step_windows(StepResult& r);  // this rank's share of the step's samples, into windows_
  void run_eval(TrainLog& log);
  void save_checkpoint();

  RunConfig cfg_;
  Comm& comm_;
  std::unique_ptr<RunDirLock> lock_;  // rank 0 of a training run
  CheckpointManager checkpoints_;
  std::string config_text_;
  std::string origin_;  // where the weights came from, for the log
  std::string tokenizer_;  // tokenizer.json of the weights' checkpoint or else of the first train set; "" if unknown
  bool profile_ = false;
  AttentionChoice attention_;  // decided once the model is known, before the memory estimate
  std::unique_ptr<Gpt<float>> model_;
  std::unique_ptr<DataParallel> dp_;    // after the model: it detaches from the model first
  View1<float> exp_avg_, exp_avg_sq_;  // AdamW moments of the part this rank updates
  TrainState state_;
  std::unique_ptr<Mixture> mixture_;
  std::unique_ptr<Evaluation> eval_;  // the [[data.eval]] sets, opened once
  std::unique_ptr<TaskEvaluation> tasks_;  // the [[data.tasks]], read once
  std::unique_ptr<DeviceBatch> batch_;
  std::vector<std::int32_t> windows_;  // this rank's windows of a step (seq_len + 1 tokens each)
  std::vector<double> micro_losses_;  // the step's micro-batches' loss sums, every rank's
};

std::string device_description();

}  // namespace rewarm
