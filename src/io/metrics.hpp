// run_dir/metrics.h5 (DESIGN.md §3): extendible series, flushed at every append so that
// h5py can read them while the run goes on.
#pragma once
#include <memory>
#include <string>

#include "core/types.hpp"

namespace rewarm {
namespace h5 {
class File;
}

struct TrainRecord {
  Index step, tokens;
  double lr, loss, grad_norm, tokens_per_second, seconds;
};

class Metrics {
 public:
  // Opens or creates the file. Rows with step > keep_through_step are dropped (a resumed run
  // redoes them); keep_through_step < 0 drops all rows (a fresh run).
  Metrics(const std::string& path, const std::string& config_text, const std::string& device, Index keep_through_step);
  ~Metrics();
  void log_train(const TrainRecord& r);
  void log_eval(const std::string& set, Index step, Index tokens, double loss);

 private:
  void truncate_group(const std::string& group, Index keep_through_step);
  std::unique_ptr<h5::File> file_;
};

}  // namespace rewarm
