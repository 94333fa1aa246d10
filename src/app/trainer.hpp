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
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "app/run_config.hpp"
#include "data/mixture.hpp"
#include "io/checkpoint.hpp"
#include "io/run_dir_lock.hpp"
#include "model/attention_choice.hpp"
#include "model/gpt.hpp"
#include "parallel/comm.hpp"
#include "parallel/device_collectives.hpp"
#include "parallel/param_units.hpp"
#include "parallel/sliced_gradients.hpp"

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
  const RunConfig& config() const { return cfg_; }
  const TrainState& state() const { return state_; }
  // Bytes of AdamW moments this rank holds (all of them, or its ZeRO-1 slice).
  std::size_t optimizer_bytes() const { return 2 * sizeof(float) * std::size_t(own_.count); }
  // Bytes this rank has handed to the gradient and parameter collectives (MPI and NCCL/RCCL).
  std::int64_t communication_bytes() const {
    return comm_.payload_bytes() + (collectives_ ? collectives_->payload_bytes() : 0);
  }
  // Fence between the phases of step() and time each (benchmarks; off in training).
  void set_profile(bool on) { profile_ = model_->timing.on = on; }
  const Gpt<float>& model() const { return *model_; }
  // How the model computes (precision, attention, workspace), as it was made.
  GptOptions model_options() const { return footprint(false).options; }
  // The attention this run computes with, and why ([precision] attention).
  const AttentionChoice& attention() const { return attention_; }
  Index micro_batches_per_step() const { return cfg_.data.global_batch / (cfg_.data.micro_batch * comm_.size()); }
  // One micro-batch per step on one rank: its gradient is the step's, no sum (and no double
  // buffer) kept. Not with ZeRO-3, which steps from its gradient shard (the sliced sum writes it).
  bool direct_steps() const {
    return cfg_.data.global_batch == cfg_.data.micro_batch && comm_.size() == 1 && cfg_.parallel.zero < 3;
  }
  // ZeRO-2: the gradient sum is kept in slices (not needed for direct steps); ZeRO-3: always (there
  // is no whole gradient to step with)
  bool sliced_sum() const { return cfg_.parallel.zero >= 3 || (cfg_.parallel.zero >= 2 && !direct_steps()); }

 private:
  void stage_window(Index j, const std::int32_t* window);  // a window into row j of the host batch
  void upload_batch();                                     // host batch to the device, asynchronously
  struct Footprint {
    GptOptions options;
    double need = 0;           // bytes this rank (host: this node's ranks) will allocate
    std::string what, advice;  // for the messages
  };
  Footprint footprint(bool full) const;
  void open_train_data();      // opens and checks every [[data.train]] set
  void set_train_position();   // the sample stream where state_ left it
  void open_eval_data();       // opens and checks every [[data.eval]] set
  void check_run_dir() const;  // run_dir (and its checkpoints/) can be created and written
  void save_checkpoint();
  void writing(const std::function<void()>& write);  // rank 0 writes; a failure stops every rank
  std::string last_good_checkpoint() const;          // "the last good checkpoint is step N (PATH)", for failures
  double eval_set(std::size_t i);

  RunConfig cfg_;
  Comm& comm_;
  std::unique_ptr<RunDirLock> lock_;  // rank 0 of a training run
  struct {
    Index step = -1;  // none yet
    std::string path;
  } last_checkpoint_;  // the newest complete checkpoint of this run, for failure messages
  std::string config_text_;
  std::string origin_;  // where the weights came from, for the log
  bool profile_ = false;
  std::unique_ptr<DeviceCollectives> collectives_;  // NCCL/RCCL for the gradients on GPUs, where built
  std::string collectives_why_;                     // why not, for the log
  AttentionChoice attention_;                       // decided once the model is known, before the memory estimate
  std::unique_ptr<Gpt<float>> model_;
  // The part of the flat buffers this rank updates: all of it, or its ZeRO-1 slice.
  struct {
    Index offset = 0, count = 0;
  } own_;
  Slices slices_;                              // every rank's part (ZeRO-1), or one part
  View1<double> grad_sum_;                     // Σ micro-batch gradients of the step (then over ranks); zero <= 1
  std::unique_ptr<SlicedGradientSum> sliced_;  // zero >= 2: only this rank's slice of that sum
  std::unique_ptr<ParamUnits> units_;          // zero 3: this rank's parameters, gathered unit by unit
  View1<float> grad_shard_;                    // zero 3: this rank's slice of the step's gradient
  View1<double> grad_slice_;                   // ZeRO-1: this rank's slice of the summed gradient
  View1<float> grad_slice32_;                  // the same, with [parallel] reduce = "fp32"
  bool reduce_fp32() const { return cfg_.parallel.reduce == "fp32" && comm_.size() > 1; }
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
