// The gradient collectives on GPUs through NCCL (NVIDIA) or RCCL (AMD; the same API). The
// communicator is bootstrapped from MPI (rank 0's unique id, broadcast); the collectives run on
// a stream of their own, each ordered after the work the compute stream holds when it starts
// (an event), so a bucket's all-reduce runs while the backward pass computes the next buckets,
// and join() makes the compute stream wait for them, without a host wait. MPI stays for all
// else (losses, norms, checkpoints) and for builds without NCCL/RCCL.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "parallel/comm.hpp"

namespace rewarm {

class DeviceCollectives {
 public:
  // Over comm's ranks where this build has NCCL/RCCL and they compute on GPUs; null otherwise,
  // with the reason in *why_not. Every rank calls it (the bootstrap is collective).
  static std::unique_ptr<DeviceCollectives> create(Comm& comm, std::string* why_not);
  ~DeviceCollectives();
  DeviceCollectives(const DeviceCollectives&) = delete;
  DeviceCollectives& operator=(const DeviceCollectives&) = delete;
  std::string description() const;  // the library and its version, for the log

  // In device memory, enqueued after everything the compute stream holds now:
  // data ← Σ over ranks of data (double: "exact"; float: reduce = "fp32").
  void start_allreduce_sum(double* data, Index n);
  void start_allreduce_sum(float* data, Index n);
  // recv ← this rank's slice of Σ over ranks of send.
  void start_reduce_scatter_sum(const double* send, double* recv, const Slices& slices);
  void start_reduce_scatter_sum(const float* send, float* recv, const Slices& slices);
  // Every rank's slice of data (its own filled in) becomes every rank's.
  void start_allgather(float* data, const Slices& slices);
  // The compute stream waits for every collective started so far.
  void join();
  // Bytes handed to the collectives above (each call's whole buffer), as Comm::payload_bytes.
  std::int64_t payload_bytes() const { return payload_bytes_; }

 private:
  struct Impl;
  explicit DeviceCollectives(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::int64_t payload_bytes_ = 0;
};

// The bootstrap's MPI half, which needs no GPU: rank 0's make_id() on every rank (make_id runs
// on rank 0 only; a failure there is every rank's, as Comm::agree makes it).
std::string broadcast_unique_id(const Comm& comm, const std::function<std::string()>& make_id);

// NCCL/RCCL refuse two ranks on one GPU (a job of more tasks per node than GPUs): the first two
// ranks whose `gpu` (this rank's, unique on its node: its PCI bus id) is the same on the same
// host, as "ranks 0 and 1 share GPU 0000:19:00.0 on node7"; "" if none do. Every rank calls it.
std::string ranks_sharing_a_gpu(const Comm& comm, const std::string& gpu);

}  // namespace rewarm
