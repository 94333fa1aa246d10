// The one place that decides how a sum or a gather over the ranks runs: NCCL/RCCL on GPUs where
// the build has them (on a stream of their own, each ordered after the compute stream's work by
// an event and joined back without a host wait), MPI otherwise (after a fence: MPI reads what the
// kernels wrote). The data-parallel strategy (DataParallel, SlicedGradientSum, ParamUnits) sends
// every collective of its flat buffers through here; losses, norms and checkpoints use Comm.
#pragma once
#include <memory>
#include <string>

#include "parallel/comm.hpp"
#include "parallel/device_collectives.hpp"

namespace rewarm {

class Collectives {
 public:
  // MPI until use_device().
  explicit Collectives(Comm& comm) : comm_(comm) {}
  // On GPUs with several ranks: NCCL/RCCL from now on where built and usable, else MPI still,
  // with the reason kept for the log. Every rank calls it (NCCL's bootstrap is collective); the
  // trainer calls it once the model is allocated (NCCL's own buffers come after the estimate).
  void use_device();
  ~Collectives();
  Collectives(const Collectives&) = delete;
  Collectives& operator=(const Collectives&) = delete;

  Comm& comm() const { return comm_; }
  bool on_device() const { return bool(device_); }
  // Whether started collectives run while kernels compute: NCCL/RCCL, or nonblocking MPI on
  // host memory (Open MPI's CUDA-aware collectives are the blocking ones: its libnbc would sum a
  // GPU buffer on the host).
  bool overlaps() const { return on_device() || kHostMemory; }
  // "NCCL 2.28.9", "MPI", or "MPI (why NCCL/RCCL are not used)", for the log.
  std::string description() const;
  // Bytes handed to the array collectives (Comm's and NCCL/RCCL's), as Comm::payload_bytes.
  std::int64_t payload_bytes() const;

  // Done when they return (with NCCL/RCCL: for the compute stream, which waits for them).
  // v ← Σ over ranks of v.
  template <class V>
  void allreduce_sum(const V& v);
  // recv ← this rank's slice of Σ over ranks of send.
  template <class V, class W>
  void reduce_scatter_sum(const V& send, const W& recv, const Slices& slices);
  // Every rank's slice of v (its own filled in) becomes every rank's.
  void allgather(const View1<float>& v, const Slices& slices);

  // Started after the kernels enqueued so far, done at wait(). Where they cannot overlap
  // (device memory over MPI), the gather is done when it returns; start_allreduce_sum is not
  // offered there (overlaps() is false: the caller sums after the backward pass).
  template <class T>
  void start_allreduce_sum(T* data, Index n);
  void start_allgather(float* data, const Slices& slices);
  void wait();

 private:
  Comm& comm_;
  std::unique_ptr<DeviceCollectives> device_;
  std::string why_not_;
};

template <class V>
void Collectives::allreduce_sum(const V& v) {
  if (!device_) return comm_.allreduce_sum(v);
  device_->start_allreduce_sum(v.data(), Index(v.size()));
  device_->join();
}

template <class V, class W>
void Collectives::reduce_scatter_sum(const V& send, const W& recv, const Slices& slices) {
  if (!device_) return comm_.reduce_scatter_sum(send, recv, slices);
  device_->start_reduce_scatter_sum(send.data(), recv.data(), slices);
  device_->join();
}

template <class T>
void Collectives::start_allreduce_sum(T* data, Index n) {
  if (device_) return device_->start_allreduce_sum(data, n);
  if (!kHostMemory) throw Error("Collectives: nonblocking MPI sums take host memory only");
  kx::fence("rewarm::collective");  // MPI reads what the kernels wrote
  comm_.start_allreduce_sum(data, n);
}

}  // namespace rewarm
