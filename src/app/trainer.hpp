// The training loop: data, model, AdamW, schedule, evaluation, metrics and checkpoints.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "app/run_config.hpp"
#include "data/mixture.hpp"
#include "io/checkpoint.hpp"
#include "model/gpt.hpp"

namespace rewarm {

struct StepResult {
  double loss = 0, grad_norm = 0, lr = 0;
  double data_seconds = 0;  // host time spent reading and uploading batches
};

class Trainer {
 public:
  // Sets up the model from the newest checkpoint in run_dir, else from init.from.
  // With eval_only, `weights` (a checkpoint) supplies the model instead.
  explicit Trainer(RunConfig cfg, const std::string& weights = "");
  // Trains to schedule.total_steps, or stops after step `stop_at` (> 0) with a checkpoint, so a
  // job with a time limit can end cleanly and the next one resume. Every input is opened and
  // checked before the first step (and before the step-0 evaluation).
  void train(Index stop_at = -1);
  // The pieces of train(), for benchmarks: open the training sets, take one optimizer step.
  void open_train_data();
  StepResult step();
  // Opens and checks every [[data.eval]] set (train() and evaluate() call it).
  void open_eval_data();
  // Mean loss per token of every eval set (first max_sequences windows, in order).
  std::map<std::string, double> evaluate();
  const RunConfig& config() const { return cfg_; }
  const TrainState& state() const { return state_; }

 private:
  void load_batch();           // the next micro_batch samples of the stream into the host batch
  void stage_window(Index j);  // window_ into row j of the host batch
  void upload_batch();         // host batch to the device, asynchronously
  void check_run_dir() const;  // run_dir (and its checkpoints/) can be created and written
  void save_checkpoint();
  double eval_set(std::size_t i);

  RunConfig cfg_;
  std::string config_text_;
  std::string origin_;  // where the weights came from, for the log
  std::unique_ptr<Gpt<float>> model_;
  View1<float> exp_avg_, exp_avg_sq_;
  TrainState state_;
  std::unique_ptr<Mixture> mixture_;
  std::vector<std::unique_ptr<TokenShard>> eval_shards_;  // one per [[data.eval]], opened once
  View1<std::int32_t> ids_, targets_;
  // Host side of the batch in page-locked memory on GPUs (the same memory as ids_ on host backends).
  using HostBatch = decltype(Kokkos::create_mirror_view(PinnedSpace(), View1<std::int32_t>()));
  HostBatch h_ids_, h_targets_;
  std::vector<std::int32_t> window_;
};

std::string device_description();

}  // namespace rewarm
