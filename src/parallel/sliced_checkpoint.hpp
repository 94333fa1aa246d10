// Checkpoints written without a gather: every rank writes its slice of the flat parameters and
// AdamW moments into the one HDF5 checkpoint (collective MPI-IO through parallel HDF5), in the
// serial writer's format, datasets and chunks alike: `convert to-hf`, `info` and a resume on
// any rank count read it unchanged. Like write_checkpoint it is written as NAME.tmp, flushed
// (MPI_File_sync), and renamed by rank 0 once every rank has finished: a kill -9 at any instant
// leaves the previous checkpoint the newest.
//
// After every collective call (a dataset, the attributes, flush, close) the ranks agree
// whether any failed: a failure on every rank at once (the .tmp cannot be created, the disk is
// full for all) ends them all there with one message (Comm::agree). A failure on one rank
// alone, inside a collective write, is not agreed by HDF5 1.10: it returns on that rank and
// leaves the others waiting inside the same call. That rank then waits
// REWARM_COLLECTIVE_WAIT_SECONDS (default 60) for the others, says its one line, removes the
// .tmp and ends the job with MPI_Abort (the previous checkpoint stays the newest).
#pragma once
#include <string>

#include "io/checkpoint.hpp"
#include "parallel/comm.hpp"

namespace rewarm {

// False where HDF5 was built without MPI (a serial module on a cluster): then the trainer
// gathers to rank 0, which writes alone.
bool parallel_checkpoints_available();

// Collective: every rank of `comm` calls it with the same header and its own part. A failure
// throws CollectiveError on every rank, its message followed by "; " + `after_failure`.
void write_checkpoint_sliced(const Comm& comm, const std::string& path, const CheckpointHeader& header,
                             const FlatPart& mine, const std::string& after_failure);

// REWARM_COLLECTIVE_WAIT_SECONDS, or 60.
double collective_wait_seconds();

}  // namespace rewarm
