// A training run's checkpoints: when one is due, writing it (with parallel HDF5 each rank writes
// its slice into the one file; without it, the slices are gathered to rank 0, which writes
// alone), keeping the newest keep_checkpoints, and the last good one that every failure message
// names. Rank 0's other writes (metrics) go through writing() for the same one-line failure.
// A checkpoint always holds the full state, so a run resumes on any rank count and ZeRO stage.
#pragma once
#include <functional>
#include <string>

#include "app/run_config.hpp"
#include "io/checkpoint.hpp"
#include "model/gpt.hpp"
#include "parallel/comm.hpp"
#include "parallel/data_parallel.hpp"

namespace rewarm {

class CheckpointManager {
 public:
  CheckpointManager(const RunConfig& cfg, Comm& comm);
  // run_dir/checkpoints can be created and written (rank 0, before the run reads or writes it).
  void check_dir() const;
  // The checkpoint a resumed run started from: the last good one until this run writes one.
  void resumed_from(Index step, const std::string& path) { last_ = {step, path}; }
  // Whether step t ends with a checkpoint: every checkpoint_interval steps, and the last step
  // of a run (the end, --stop-at, a signal).
  bool due(Index t, bool last) const;
  // Collective: step `header.state.step`'s checkpoint from the parameters this rank holds
  // (DataParallel::held_params) and the moments of the part it updates, then the oldest beyond
  // keep_checkpoints removed.
  void save(const CheckpointHeader& header, const DataParallel& dp, const View1<float>& exp_avg,
            const View1<float>& exp_avg_sq);
  // Rank 0 runs `write`; a failure ends every rank with one line that names the file, the OS's
  // reason and the last good checkpoint.
  void writing(const std::function<void()>& write) const;
  // "the last good checkpoint is step N (PATH)", or that none was written.
  std::string last_good() const;
  const std::string& last_path() const { return last_.path; }

 private:
  void remove_old() const;  // rank 0: all but the newest keep_checkpoints

  std::string run_dir_;
  Index interval_, keep_;
  Comm& comm_;
  struct {
    Index step = -1;  // none yet
    std::string path;
  } last_;  // the newest complete checkpoint of this run
};

}  // namespace rewarm
