// run_dir/metrics.h5 (DESIGN.md §3). The series live in memory and every log call rewrites the
// (small) file to metrics.h5.tmp and renames it into place: a crash at any instant leaves the
// last complete file, and h5py can open it at any time (the writer never holds it open, so
// HDF5's file locking never refuses a reader).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/index.hpp"

namespace rewarm {

struct TrainRecord {
  Index step, tokens;
  double lr, loss, grad_norm, tokens_per_second, seconds;
};

class Metrics {
 public:
  // Loads the file if it exists. Rows with step > keep_through_step are dropped (a resumed run
  // redoes them); keep_through_step < 0 drops all rows (a fresh run).
  // `run` describes the run's setting: device, world size, GEMM precision.
  struct Run {
    std::string device;
    int world_size = 1;
    std::string precision = "fp32";
  };
  Metrics(const std::string& path, const std::string& config_text, const Run& run, Index keep_through_step);
  // set_samples: samples drawn so far from each training set, logged as /train/samples_<name>.
  void log_train(const TrainRecord& r, const std::vector<std::pair<std::string, Index>>& set_samples = {});
  void log_eval(const std::string& set, Index step, Index tokens, double loss);

 private:
  struct Series {  // one group: /train or /eval/<set>
    std::vector<std::int64_t> step, tokens;
    std::map<std::string, std::vector<double>> values;
  };
  void write() const;
  std::string path_, config_;
  Run run_;
  std::map<std::string, Series> groups_;  // "train", "eval/<set>"
};

}  // namespace rewarm
