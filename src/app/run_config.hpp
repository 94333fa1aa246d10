// The run config (DESIGN.md §2): TOML file + --set overrides, validated into typed fields.
#pragma once
#include <string>
#include <vector>

#include "data/data_set.hpp"
#include "model/config.hpp"
#include "optim/adamw_config.hpp"
#include "optim/schedule.hpp"

namespace rewarm {

struct RunConfig {
  std::string source;  // the file it came from, for error messages
  std::string run_dir = "runs/default";
  ModelConfig model;
  bool model_given = false;  // false: take the model from init.from's checkpoint
  struct {
    std::string from = "random", load = "weights";
    std::uint64_t seed = 1234;
    double std = 0.02;
  } init;
  struct {
    Index seq_len = 2048, micro_batch = 4, global_batch = 1024;
    bool shuffle = true;
    std::uint64_t seed = 1234;
    std::vector<DataSet> train, eval;
  } data;
  AdamW optimizer;
  Schedule schedule;
  struct {
    std::string gemm = "fp32";         // fp32 | tf32 | bf16: what GEMM inputs are rounded to
    std::string attention = "auto";    // auto | fused (cuDNN, bf16) | gemm: choose_attention decides
    Index attention_workspace_mb = 0;  // bounds the T×T scores of a group of (batch, head) pairs; 0: auto
  } precision;
  struct {
    Index zero = 0;                // 1: ZeRO-1, AdamW state sharded over the ranks
    bool gpu_aware_mpi = false;    // device buffers straight to MPI
    bool overlap = false;          // sum the last micro-batch's gradients bucket by bucket during its backward
    std::string reduce = "exact";  // exact: gradient sums over ranks in double; fp32: in float (half the bytes)
  } parallel;
  struct {
    std::string recompute = "none";  // none | selective | full: what the forward pass keeps (Recompute)
  } memory;
  struct {
    Index eval_interval = 100, log_interval = 10, checkpoint_interval = 1000, keep_checkpoints = 3;
    bool eval_at_start = true;
  } train;

  Index accumulation_steps() const { return data.global_batch / data.micro_batch; }
  Index tokens_per_step() const { return data.global_batch * data.seq_len; }
  double lr_at(Index t) const { return schedule(t, optimizer.lr, optimizer.min_lr); }  // LR of optimizer step t
  // Resolved config as TOML (every key, defaults filled in): stored in checkpoints and metrics.
  std::string to_toml() const;
  // Checks that need the model (called again once a checkpoint supplied it).
  void validate_model() const;
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
