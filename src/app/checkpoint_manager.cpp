#include "app/checkpoint_manager.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "parallel/sliced_checkpoint.hpp"

namespace rewarm {
namespace fs = std::filesystem;

CheckpointManager::CheckpointManager(const RunConfig& cfg, Comm& comm)
    : run_dir_(cfg.run_dir),
      interval_(cfg.train.checkpoint_interval),
      keep_(std::max<Index>(cfg.train.keep_checkpoints, 1)),
      comm_(comm) {}

void CheckpointManager::check_dir() const {
  const auto dir = fs::path(run_dir_) / "checkpoints";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(run_dir_, "cannot create run_dir/checkpoints: " + ec.message());
  const auto probe = dir / ".rewarm-write-test";
  if (!std::ofstream(probe).put('x')) fail(run_dir_, "run_dir/checkpoints is not writable");
  fs::remove(probe, ec);
}

bool CheckpointManager::due(Index t, bool last) const { return (interval_ > 0 && t % interval_ == 0) || last; }

namespace {
// Elements [offset, offset + count) of v, in host memory (v itself on a CPU).
template <class V>
auto host_part(const V& v, Index offset, Index count) {
  return Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(),
                                             Kokkos::subview(v, std::make_pair(offset, offset + count)));
}
}  // namespace

void CheckpointManager::save(const CheckpointHeader& header, const DataParallel& dp, const View1<float>& exp_avg,
                             const View1<float>& exp_avg_sq) {
  const View1<float> params = dp.held_params();
  const std::string path = checkpoint_path(run_dir_, header.state.step);
  const Slices& slices = dp.slices();
  const Index own = dp.owned_offset();
  if (comm_.size() > 1 && parallel_checkpoints_available()) {  // each rank its part of the one file
    const Slices parts(slices.total(), comm_.size());
    FlatPart mine;
    mine.offset = parts.offset[std::size_t(comm_.rank())], mine.count = parts.count[std::size_t(comm_.rank())];
    mine.state = comm_.root();
    // the parameters from where this rank holds them: all of them, or (zero 3) its slice, which is this part
    const auto p = host_part(params, mine.offset - dp.held_offset(), mine.count);
    const auto m = host_part(exp_avg, mine.offset - own, mine.count);  // zero 0: own is everything
    const auto v = host_part(exp_avg_sq, mine.offset - own, mine.count);
    mine.params = p.data(), mine.exp_avg = m.data(), mine.exp_avg_sq = v.data();
    write_checkpoint_sliced(comm_, path, header, mine, last_good());
  } else {  // gathered to rank 0
    CheckpointData c;
    static_cast<CheckpointHeader&>(c) = header;
    auto gathered = [&](const View1<float>& part) {  // every rank's slice of a sliced buffer
      std::vector<float> full(std::size_t(slices.total()));
      const auto mine = host_copy(part);
      std::copy(mine.data(), mine.data() + dp.owned_count(), full.begin() + own);
      if (dp.moments_sliced())
        comm_.gather_to_root(
            Kokkos::View<float*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(full.data(), full.size()),
            slices);
      return full;
    };
    if (dp.moments_sliced() || comm_.root()) {  // unsliced: rank 0 holds all the moments
      c.exp_avg = gathered(exp_avg);
      c.exp_avg_sq = gathered(exp_avg_sq);
    }
    if (dp.params_sliced()) c.params = gathered(params);
    writing([&] {
      if (!dp.params_sliced()) {
        const auto h = host_copy(params);
        c.params.assign(h.data(), h.data() + h.extent(0));
      }
      write_checkpoint(path, c);
    });
  }
  last_ = {header.state.step, path};
  if (comm_.root()) remove_old();
}

void CheckpointManager::remove_old() const {
  const auto all = list_checkpoints(run_dir_);
  const std::size_t keep = std::size_t(keep_);
  for (std::size_t i = 0; i + keep < all.size(); ++i) {
    std::error_code ec;  // an old checkpoint that stays is no reason to stop
    if (!fs::remove(all[i], ec) && ec)
      std::fprintf(stderr, "rewarm: warning: cannot remove %s (keep_checkpoints = %lld): %s\n", all[i].c_str(),
                   static_cast<long long>(keep_), ec.message().c_str());
  }
}

void CheckpointManager::writing(const std::function<void()>& write) const {
  comm_.agree([&] {
    if (!comm_.root()) return;
    try {
      write();
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + "; " + last_good());
    }
  });
}

std::string CheckpointManager::last_good() const {
  return last_.step >= 0 ? "the last good checkpoint is step " + std::to_string(last_.step) + " (" + last_.path + ")"
                         : std::string("no checkpoint of this run was written");
}

}  // namespace rewarm
