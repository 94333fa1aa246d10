// run_dir/metrics.h5 (docs/formats.md): one group of series per kind of record
// (/train, /eval/<set>), each series an extendible chunked dataset. A record is appended to
// every series of its group and the file is flushed, in constant time whatever the file holds.
//
// The file is written in HDF5's SWMR mode (single writer, multiple readers): HDF5 orders its
// writes so that the file on disk is always readable as of the last flush, so a reader may open
// it while the run writes, and a crash (kill -9 at any instant) leaves every flushed record
// readable. Such readers open it with SWMR (h5py: File(path, "r", swmr=True); rewarm info and
// postprocess do); once the writer has closed the file, any reader can. A crash can leave a
// group's series one record apart: a group has as many rows as its shortest series.
//
// Opening rewrites the file once (to metrics.h5.tmp, then renamed), keeping what a resumed run
// keeps: the only write that grows with the file, once per start.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/index.hpp"

namespace rewarm {
namespace h5 {
class File;
}

struct TrainRecord {
  Index step, tokens;
  double lr, loss, grad_norm, tokens_per_second, seconds;  // seconds: wall time since the (re)start
  double step_seconds = 0;                               // the step's own time
  double model_flops_per_second = 0;                     // training FLOPs (PaLM convention) per second
};

class Metrics {
 public:
  // `run` describes the run's setting: device, world size, GEMM precision, which attention ran
  // (the latest run's, where a resumed run moved between machines).
  struct Run {
    std::string device;
    int world_size = 1;
    std::string precision = "fp32";
    std::string attention = "gemm";
  };
  // Loads the file if it exists. Rows with step > keep_through_step are dropped (a resumed run
  // redoes them); keep_through_step < 0 drops all rows (a fresh run). `train_sets` name the
  // series /train/samples_<set>, `eval_sets` the groups /eval/<set> this run appends to.
  Metrics(const std::string& path, const std::string& config_text, const Run& run, Index keep_through_step,
          const std::vector<std::string>& train_sets, const std::vector<std::string>& eval_sets,
          const std::vector<std::string>& tasks = {});
  ~Metrics();  // closes the file: from then on any HDF5 reader opens it, SWMR or not
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;
  // set_samples: samples drawn so far from each training set (the train_sets, in order).
  void log_train(const TrainRecord& r, const std::vector<std::pair<std::string, Index>>& set_samples = {});
  void log_eval(const std::string& set, Index step, Index tokens, double loss);
  // A [[data.tasks]] task's score (/tasks/<name>: acc, acc_norm; acc_norm NaN for a single choice).
  void log_task(const std::string& task, Index step, Index tokens, double acc, double acc_norm);
  const std::string& path() const { return path_; }

 private:
  struct Group;  // the open series of one group
  void append(Group& g, Index step, Index tokens, const std::vector<double>& values);
  std::string path_;
  std::unique_ptr<h5::File> file_;
  std::map<std::string, std::unique_ptr<Group>> groups_;  // "train", "eval/<set>"
};

// Every group of a metrics file and its series, each cut to the group's rows (the shortest
// series) — what a reader of a file that may be being written, or was killed, should use.
struct MetricsGroup {
  std::vector<std::int64_t> step, tokens;
  std::map<std::string, std::vector<double>> values;
};
std::map<std::string, MetricsGroup> read_metrics(const std::string& path);

}  // namespace rewarm
