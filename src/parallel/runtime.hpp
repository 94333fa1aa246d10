// The process around a command that computes (train, eval, bench): MPI when the job was
// launched by mpirun/srun, then Kokkos on this rank's device, torn down in reverse order.
// Commands that only read and write files (info, convert, tokenize, synth) start neither, so
// they run anywhere, a login node without a GPU included, and need no MPI launcher.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "parallel/comm.hpp"

namespace rewarm {

// Thrown to main with the exit status once the error has been reported.
struct ExitStatus {
  int code;
};
// A run stopped by SIGUSR1/SIGTERM after writing a checkpoint: EX_TEMPFAIL, "requeue me".
constexpr int kExitRequeue = 75;

// Runs body(comm) with MPI and Kokkos started. `kokkos_args` are the command line's
// --kokkos-* options. A rewarm::CollectiveError (all ranks agree on it) is printed once, by
// rank 0; any other error is printed by the rank that raised it, naming the rank, and ends
// the whole job (MPI_Abort) so that no rank waits forever. Either way ExitStatus{1} follows.
void run_on_device(const std::vector<std::string>& kokkos_args, const std::function<void(Comm&)>& body);

// True when this process is one of several started by an MPI launcher (the environment says so).
bool launched_by_mpi();

}  // namespace rewarm
