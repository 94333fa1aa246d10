#include "parallel/sliced_checkpoint.hpp"

#include <cstdio>
#include <memory>

#include "core/env.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/hdf5.hpp"

namespace rewarm {

bool parallel_checkpoints_available() {
#ifdef H5_HAVE_PARALLEL
  return true;
#else
  return false;
#endif
}

double collective_wait_seconds() { return env_seconds("REWARM_COLLECTIVE_WAIT_SECONDS", 60); }

void write_checkpoint_sliced(const Comm& comm, const std::string& path, const CheckpointHeader& header,
                             const FlatPart& mine, const std::string& after_failure) {
#ifdef H5_HAVE_PARALLEL
  const std::string tmp = path + ".tmp";
  const double wait = collective_wait_seconds();
  auto step = [&](const std::function<void()>& write) {
    comm.agree_within(write, wait, [&](const std::string& message) {
      std::fprintf(stderr,
                   "rewarm: error: rank %d: %s; %s; the other ranks did not return from the collective write in "
                   "%.0f s: ending the job\n",
                   comm.rank(), message.c_str(), after_failure.c_str(), wait);
      std::fflush(stderr);
      std::remove(tmp.c_str());
      MPI_Abort(MPI_COMM_WORLD, 1);
    });
  };
  try {
    std::unique_ptr<AtomicFile> out;  // rank 0's: it renames the file, or removes it on a failure
    if (comm.root()) out = std::make_unique<AtomicFile>(path);
    {
      std::unique_ptr<h5::File> f;
      comm.agree([&] {  // a world without MPI (one rank, no mpirun) writes it alone
        f = comm.mpi() == MPI_COMM_NULL ? std::make_unique<h5::File>(tmp, h5::File::Create)
                                        : std::make_unique<h5::File>(tmp, comm.mpi());
      });
      write_checkpoint_contents(*f, header, mine, step);
      step([&] { f->flush(); });
      step([&] { f->close(); });
    }
    comm.agree([&] {
      if (out) out->commit();
    });
  } catch (const CollectiveError& e) {
    throw CollectiveError(std::string(e.what()) + "; " + after_failure);
  }
#else
  (void)comm, (void)header, (void)mine, (void)after_failure;
  fail(path, "this build's HDF5 has no MPI-IO: checkpoints are gathered to rank 0 instead");
#endif
}

}  // namespace rewarm
