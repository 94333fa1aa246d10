// The run config (docs/config.md): TOML file + --set overrides, validated into typed fields.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "core/gemm_precision.hpp"
#include "core/option.hpp"
#include "data/data_set.hpp"
#include "model/attention_request.hpp"
#include "model/config.hpp"
#include "model/recompute.hpp"
#include "optim/adamw_config.hpp"
#include "optim/schedule.hpp"

namespace rewarm {

// init.load: what a run takes from init.from's checkpoint: the weights (a new run from them), or
// everything (weights, AdamW moments, step and data position: the same run continued).
enum class InitLoad { weights, full };
inline const std::array<const char*, 2>& option_names(InitLoad) {
  static const std::array<const char*, 2> names{"weights", "full"};
  return names;
}
// parallel.reduce: the gradient sums over the ranks in double (exact), or in float (half the bytes).
enum class GradientReduce { exact, fp32 };
inline const std::array<const char*, 2>& option_names(GradientReduce) {
  static const std::array<const char*, 2> names{"exact", "fp32"};
  return names;
}

// Two numbers written as one TOML array (optimizer.betas = [0.9, 0.95]), held in two fields.
template <class X>
struct NumberPair {
  X& first;
  X& second;
};

struct RunConfig {
  std::string source;  // the file it came from, for error messages
  std::string run_dir = "runs/default";
  ModelConfig model;
  bool model_given = false;  // false: take the model from init.from's checkpoint
  struct {
    std::string from = "random";
    InitLoad load = InitLoad::weights;
    std::uint64_t seed = 1234;
    double std = 0.02;
  } init;
  struct {
    Index seq_len = 2048, micro_batch = 4, global_batch = 1024;
    bool shuffle = true;
    std::uint64_t seed = 1234;
    std::vector<DataSet> train, eval;
    std::vector<TaskSet> tasks;
  } data;
  AdamW optimizer;
  Schedule schedule;
  // The schedule's other spellings: a warmup fraction of total_steps, a length in tokens. The
  // parser resolves them into schedule.warmup_steps and total_steps, then clears them.
  struct {
    std::optional<double> warmup, total_tokens;
  } schedule_as_given;
  struct {
    GemmPrecision gemm = GemmPrecision::fp32;            // what GEMM inputs are rounded to
    AttentionRequest attention = AttentionRequest::automatic;  // choose_attention decides
    Index attention_workspace_mb = 0;  // bounds the T×T scores of a group of (batch, head) pairs; 0: auto
  } precision;
  struct {
    Index zero = 0;                // 1: ZeRO-1, AdamW state sharded over the ranks
    bool gpu_aware_mpi = false;    // device buffers straight to MPI
    bool overlap = false;          // sum the last micro-batch's gradients bucket by bucket during its backward
    GradientReduce reduce = GradientReduce::exact;
  } parallel;
  struct {
    Recompute recompute = Recompute::none;  // what the forward pass keeps
  } memory;
  struct {
    Index eval_interval = 100, log_interval = 10, checkpoint_interval = 1000, keep_checkpoints = 3;
    bool eval_at_start = true;
  } train;

  Index accumulation_steps() const { return data.global_batch / data.micro_batch; }
  Index tokens_per_step() const { return data.global_batch * data.seq_len; }
  // The run's optimizer steps: the moment warmup's (LR 0), then the schedule's.
  Index total_steps() const { return optimizer.moment_warmup_steps + schedule.total_steps; }
  bool in_moment_warmup(Index t) const { return t <= optimizer.moment_warmup_steps; }
  // LR of optimizer step t (1-based): 0 in the moment warmup, then the schedule's step t - warmup.
  double lr_at(Index t) const {
    return in_moment_warmup(t) ? 0.0 : schedule(t - optimizer.moment_warmup_steps, optimizer.lr, optimizer.min_lr);
  }
  // Resolved config as TOML (every key, defaults filled in): stored in checkpoints and metrics.
  std::string to_toml() const;
  // Every key, written once here: f(table, key, field) ("" for the top level); the [model] table
  // is ModelConfig::for_each_field's. The parser reads them by their types (an option's enum, a
  // number pair, an array of data-set tables, an optional spelling) and to_toml writes them back.
  template <class F>
  void for_each_key(F&& f) {
    keys(*this, f);
  }
  template <class F>
  void for_each_key(F&& f) const {
    keys(*this, f);
  }
  // Checks that need the model (called again once a checkpoint supplied it).
  void validate_model() const;

 private:
  template <class Self, class F>
  static void keys(Self& c, F& f) {
    using Number = std::conditional_t<std::is_const_v<Self>, const double, double>;
    NumberPair<Number> betas{c.optimizer.beta1, c.optimizer.beta2};
    f("", "run_dir", c.run_dir);
    f("init", "from", c.init.from);
    f("init", "load", c.init.load);
    f("init", "seed", c.init.seed);
    f("init", "std", c.init.std);
    f("data", "seq_len", c.data.seq_len);
    f("data", "micro_batch", c.data.micro_batch);
    f("data", "global_batch", c.data.global_batch);
    f("data", "shuffle", c.data.shuffle);
    f("data", "seed", c.data.seed);
    f("data", "train", c.data.train);
    f("data", "eval", c.data.eval);
    f("data", "tasks", c.data.tasks);
    f("optimizer", "lr", c.optimizer.lr);
    f("optimizer", "betas", betas);
    f("optimizer", "min_lr", c.optimizer.min_lr);
    f("optimizer", "eps", c.optimizer.eps);
    f("optimizer", "weight_decay", c.optimizer.weight_decay);
    f("optimizer", "grad_clip", c.optimizer.grad_clip);
    f("optimizer", "moment_warmup_steps", c.optimizer.moment_warmup_steps);
    f("schedule", "kind", c.schedule.kind);
    f("schedule", "total_steps", c.schedule.total_steps);
    f("schedule", "total_tokens", c.schedule_as_given.total_tokens);
    f("schedule", "warmup_steps", c.schedule.warmup_steps);
    f("schedule", "warmup", c.schedule_as_given.warmup);
    f("schedule", "const_lr", c.schedule.const_lr);
    f("schedule", "cooldown", c.schedule.cooldown);
    f("schedule", "constant", c.schedule.constant);
    f("schedule", "timescale", c.schedule.timescale);
    f("schedule", "decay", c.schedule.decay);
    f("schedule", "decay_steps", c.schedule.decay_steps);
    f("precision", "gemm", c.precision.gemm);
    f("precision", "attention", c.precision.attention);
    f("precision", "attention_workspace_mb", c.precision.attention_workspace_mb);
    f("parallel", "zero", c.parallel.zero);
    f("parallel", "gpu_aware_mpi", c.parallel.gpu_aware_mpi);
    f("parallel", "overlap", c.parallel.overlap);
    f("parallel", "reduce", c.parallel.reduce);
    f("memory", "recompute", c.memory.recompute);
    f("train", "eval_interval", c.train.eval_interval);
    f("train", "eval_at_start", c.train.eval_at_start);
    f("train", "log_interval", c.train.log_interval);
    f("train", "checkpoint_interval", c.train.checkpoint_interval);
    f("train", "keep_checkpoints", c.train.keep_checkpoints);
  }
};

// Parses `path`, applies overrides "section.key=value", validates. Throws rewarm::Error with
// one line naming the file and key.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides);
RunConfig parse_run_config(const std::string& text, const std::string& source,
                           const std::vector<std::string>& overrides);

// Every key the parser accepts ("optimizer.lr", "data.train.path", ...), sorted.
std::vector<std::string> run_config_keys();

// What a resumed run may change: keys that do not alter the training trajectory (evaluation,
// logging, checkpointing, where the run lives, how each step's samples are split into
// micro-batches). Entries name a key or a whole table or array ("data.eval").
const std::vector<std::string>& resume_may_change();
// The keys whose values differ between two resolved configs (TOML text), as "key: old -> new",
// leaving out the keys (or tables, arrays) in `ignore`.
std::vector<std::string> config_differences(const std::string& before, const std::string& after,
                                            const std::vector<std::string>& ignore = {});
// config_differences(stored, now, resume_may_change()).
std::vector<std::string> changes_refused_on_resume(const std::string& stored, const std::string& now);

}  // namespace rewarm
