// rewarm checkpoints (DESIGN.md §3): HF-named float32 tensors, Adam moments, training state.
#pragma once
#include <string>
#include <vector>

#include "model/config.hpp"

namespace rewarm {

struct TrainState {
  Index step = 0;                  // optimizer steps taken
  Index tokens_seen = 0;           // training tokens consumed
  Index samples_seen = 0;          // position in the global sample stream
  std::vector<Index> set_samples;  // samples drawn from each [[data.train]] set so far
};

struct CheckpointData {
  ModelConfig model;
  std::string config_text;  // resolved run config (TOML)
  int world_size = 1;       // ranks of the run that wrote it (any rank count can resume it)
  TrainState state;
  std::vector<float> params;               // flat, ParamLayout(model) offsets
  std::vector<float> exp_avg, exp_avg_sq;  // empty when the checkpoint has no optimizer state
};

// Writes NAME.tmp, syncs it, then renames it to NAME: a crash never leaves half a checkpoint.
void write_checkpoint(const std::string& path, const CheckpointData& c);

// Reads and validates a checkpoint. If `expect` is given, every tensor shape must match it.
CheckpointData read_checkpoint(const std::string& path, const ModelConfig* expect, bool need_optimizer);

// run_dir/checkpoints/step_NNNNNNNN.h5, newest last; .tmp leftovers are ignored.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
std::string checkpoint_path(const std::string& run_dir, Index step);

}  // namespace rewarm
