// rewarm checkpoints (docs/formats.md): HF-named float32 tensors, Adam moments, training state.
// Every dataset carries checksums (HDF5's Fletcher32 per chunk, verified by HDF5 on every read;
// the metadata has its own): a damaged checkpoint fails to load, naming the file and dataset.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/config.hpp"

namespace rewarm {
namespace h5 {
class File;
}

struct TrainState {
  Index step = 0;                  // optimizer steps taken
  Index tokens_seen = 0;           // training tokens consumed
  Index samples_seen = 0;          // position in the global sample stream
  std::vector<Index> set_samples;  // samples drawn from each [[data.train]] set so far
  // Each set's count when the run's weights took effect (a continuation that changed them):
  // the mixture follows the weights from there on; empty: from the start (zeros).
  std::vector<Index> set_samples_origin;
};

struct CheckpointHeader {
  ModelConfig model;
  std::string config_text;  // resolved run config (TOML)
  int world_size = 1;       // ranks of the run that wrote it (any rank count can resume it)
  TrainState state;
  // The HF tokenizer.json (text) of the run's tokens, carried from checkpoint to checkpoint so
  // that `convert to-hf` writes a complete directory; empty where it is not known.
  std::string tokenizer;
};

struct CheckpointData : CheckpointHeader {
  std::vector<float> params;               // flat, ParamLayout(model) offsets
  std::vector<float> exp_avg, exp_avg_sq;  // empty when the checkpoint has no optimizer state
};

// Writes NAME.tmp, syncs it, then renames it to NAME: a crash never leaves half a checkpoint.
void write_checkpoint(const std::string& path, const CheckpointData& c);

// One rank's part of the flat state (ParamLayout offsets), in host memory: elements
// [offset, offset + count) of the parameters and, if the checkpoint has them, of the moments.
struct FlatPart {
  Index offset = 0, count = 0;
  const float* params = nullptr;
  const float* exp_avg = nullptr;  // nullptr: the checkpoint has no optimizer state
  const float* exp_avg_sq = nullptr;
  bool state = true;  // this part writes the training state (one rank of a parallel write)
};

// A checkpoint's attributes, `part` of each of its tensors and the training state, into the
// open file `f`, every write through `step` (one attribute or dataset each, in the same order
// on every rank): in a parallel file each is a collective call, and `step` agrees after it
// whether any rank failed (src/parallel/sliced_checkpoint.cpp).
void write_checkpoint_contents(h5::File& f, const CheckpointHeader& h, const FlatPart& part,
                               const std::function<void(const std::function<void()>&)>& step);

// A checkpoint opened and checked (format, model config, every tensor present with its shape)
// without reading the tensors: cheap, so that every input of a run is checked before anything
// large is allocated. The read_* calls then fill flat buffers (ParamLayout offsets; padding is
// left alone), each tensor verified against its checksums.
class CheckpointReader {
 public:
  // If `expect` is given, every tensor shape must match it (and it becomes model()).
  explicit CheckpointReader(const std::string& path, const ModelConfig* expect = nullptr);
  ~CheckpointReader();
  const std::string& path() const { return path_; }
  const ModelConfig& model() const { return model_; }
  const std::string& config_text() const { return config_text_; }
  int world_size() const { return world_size_; }
  const TrainState& state() const { return state_; }
  bool has_optimizer() const { return has_optimizer_; }
  std::string tokenizer() const;  // the stored tokenizer.json, or "" (read on demand: megabytes)
  // False for checkpoints written before rewarm stored checksums: they load unverified.
  bool checksummed() const { return checksummed_; }
  void read_params(float* params) const;  // ParamLayout(model()).total floats
  // Elements [offset, offset + count) of the flat parameters only (a ZeRO-3 rank's slice).
  void read_params_part(Index offset, Index count, float* params) const;
  void read_moments(float* exp_avg, float* exp_avg_sq) const;  // same; needs has_optimizer()
  // Elements [offset, offset + count) of the flat moments only (a ZeRO rank's slice).
  void read_moments_part(Index offset, Index count, float* exp_avg, float* exp_avg_sq) const;

 private:
  // Flat elements [offset, offset + count) of the group's tensors into `into` (element `offset`).
  void read_group(const std::string& group, Index offset, Index count, float* into) const;
  std::string path_;
  std::unique_ptr<h5::File> file_;
  ModelConfig model_;
  std::string config_text_;
  int world_size_ = 1;
  TrainState state_;
  bool has_optimizer_ = false, checksummed_ = true;
};

// The whole checkpoint in memory (conversions, tests).
CheckpointData read_checkpoint(const std::string& path, const ModelConfig* expect, bool need_optimizer);

// "FILE has no checksums (...): loaded unverified" — the note for a checksum-less checkpoint.
std::string unverified_note(const CheckpointReader& r);

// run_dir/checkpoints/step_NNNNNNNN.h5, newest last; .tmp leftovers are ignored.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
std::string checkpoint_path(const std::string& run_dir, Index step);
// The step a checkpoint path names (step_NNNNNNNN.h5), or -1.
Index checkpoint_step(const std::string& path);

}  // namespace rewarm
