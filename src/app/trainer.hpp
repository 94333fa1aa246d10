// The training loop: data, model, AdamW, schedule, evaluation, metrics and checkpoints, on one
// rank or data-parallel over the ranks of `comm`.
//
// Data parallelism: each optimizer step's global_batch samples are drawn by every rank (the
// stream is a pure function of the seed and the per-set counts); rank r computes samples
// [r·G/N, (r+1)·G/N) of the step in micro_batch pieces. Micro-batch gradients are summed in
// double, over micro-batches and then over ranks (one all-reduce, or a reduce-scatter with
// ZeRO-1), so every rank count gives the same step. Rank 0 writes checkpoints and metrics; the
// checkpoint always holds the full state, so a run resumes on any rank count.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "app/run_config.hpp"
#include "data/mixture.hpp"
#include "io/checkpoint.hpp"
#include "model/gpt.hpp"
#include "parallel/comm.hpp"

namespace rewarm {

struct StepResult {
  double loss = 0, grad_norm = 0, lr = 0;
  double data_seconds = 0;       // host time reading batches (this rank)
  double allreduce_seconds = 0;  // gradient and loss reduction over the ranks (this rank)
  // With Trainer::profile (fences between phases): forward, backward (with the gradient sum
  // over micro-batches) and optimizer (clip, AdamW, ZeRO-1 all-gather excluded) seconds.
  double forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
};

class Trainer {
 public:
  // Sets up the model from the newest checkpoint in run_dir, else from init.from. With
  // `weights` (a checkpoint: eval), that supplies the model instead. Call inside comm.agree().
  Trainer(RunConfig cfg, Comm& comm, const std::string& weights = "");
  // Trains to schedule.total_steps, or stops after step `stop_at` (> 0) with a checkpoint, so a
  // job with a time limit can end cleanly and the next one resume. Every input is opened and
  // checked on every rank before the first step (and before the step-0 evaluation).
  // SIGUSR1 or SIGTERM (a job near its time limit) on any rank: every rank finishes the step,
  // the checkpoint is written, and train() returns Stop::signal (exit status 75: requeue me).
  enum class Stop { finished, stop_at, signal };
  Stop train(Index stop_at = -1);
  // The pieces of train(), for benchmarks: open the training sets, take one optimizer step.
  void open_train_data();
  StepResult step();
  // Opens and checks every [[data.eval]] set (train() and evaluate() call it).
  void open_eval_data();
  // Mean loss per token of every eval set (first max_sequences windows, in order).
  std::map<std::string, double> evaluate();
  const RunConfig& config() const { return cfg_; }
  const TrainState& state() const { return state_; }
  // Bytes of AdamW moments this rank holds (all of them, or its ZeRO-1 slice).
  std::size_t optimizer_bytes() const { return 2 * sizeof(float) * std::size_t(own_.count); }
  // Fence between the phases of step() and time each (benchmarks; off in training).
  void set_profile(bool on) { profile_ = model_->timing.on = on; }
  const Gpt<float>& model() const { return *model_; }
  Index micro_batches_per_step() const { return cfg_.data.global_batch / (cfg_.data.micro_batch * comm_.size()); }
  // One micro-batch per step on one rank: the gradient needs no sum (and no double buffer).
  bool direct_steps() const { return cfg_.data.global_batch == cfg_.data.micro_batch && comm_.size() == 1; }

 private:
  void stage_window(Index j, const std::int32_t* window);  // a window into row j of the host batch
  void upload_batch();         // host batch to the device, asynchronously
  void check_run_dir() const;  // run_dir (and its checkpoints/) can be created and written
  void save_checkpoint();
  double eval_set(std::size_t i);

  RunConfig cfg_;
  Comm& comm_;
  std::string config_text_;
  std::string origin_;  // where the weights came from, for the log
  bool profile_ = false;
  std::unique_ptr<Gpt<float>> model_;
  // The part of the flat buffers this rank updates: all of it, or its ZeRO-1 slice.
  struct {
    Index offset = 0, count = 0;
  } own_;
  Slices slices_;                  // every rank's part (ZeRO-1), or one part
  View1<double> grad_sum_;         // Σ micro-batch gradients of the step (then over ranks)
  View1<double> grad_slice_;       // ZeRO-1: this rank's slice of the summed gradient
  View1<float> exp_avg_, exp_avg_sq_;  // AdamW moments of the owned part
  TrainState state_;
  std::unique_ptr<Mixture> mixture_;
  std::vector<std::unique_ptr<TokenShard>> eval_shards_;  // one per [[data.eval]], opened once
  View1<std::int32_t> ids_, targets_;
  // Host side of the batch in page-locked memory on GPUs (the same memory as ids_ on host backends).
  using HostBatch = decltype(Kokkos::create_mirror_view(PinnedSpace(), View1<std::int32_t>()));
  HostBatch h_ids_, h_targets_;
  std::vector<std::int32_t> windows_;  // this rank's windows of a step (seq_len + 1 tokens each)
  // Data parallel without ZeRO: the last micro-batch's gradients are summed over the ranks bucket
  // by bucket while its backward pass goes on (ParamLayout::gradient_buckets).
  bool overlap_ = false;
  std::vector<std::vector<std::pair<Index, Index>>> buckets_;
};

std::string device_description();

}  // namespace rewarm
