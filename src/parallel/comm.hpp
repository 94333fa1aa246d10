// The ranks of a data-parallel job: rank, size, local rank, and the collectives the trainer
// needs on Views (all-reduce, reduce-scatter, all-gather, gather, broadcast) and on scalars.
// A Comm made without MPI is a world of one rank whose collectives do nothing, so a run
// without mpirun/srun is exactly the single-process program.
//
// Device data: every collective fences the execution space before MPI reads or writes it.
// With gpu_aware = false, data in memory the host cannot access is staged through a host
// buffer; with true, device pointers go to MPI (a CUDA-/ROCm-aware MPI is then required).
#pragma once
#include <mpi.h>

#include <functional>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace rewarm {

// A contiguous split of n elements over the ranks: rank r owns [offset[r], offset[r] + count[r]).
struct Slices {
  std::vector<Index> offset, count;
  Slices(Index n, int ranks);  // equal parts, each but the last a multiple of 16 elements
  // The parts of [begin, end) in each rank's slice, as offsets from begin (empty parts too).
  Slices within(Index begin, Index end) const;
  Index total() const { return offset.back() + count.back(); }  // the n split

 private:
  Slices() = default;
};

class Comm {
 public:
  Comm() = default;                               // one rank, no MPI
  explicit Comm(MPI_Comm world, bool gpu_aware);  // duplicates `world`
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;
  ~Comm();

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // rank among the ranks on this node
  int local_size() const { return local_size_; }  // ranks on this node
  bool root() const { return rank_ == 0; }
  MPI_Comm mpi() const { return comm_; }  // MPI_COMM_NULL in a world without MPI
  bool gpu_aware() const { return gpu_aware_; }
  void set_gpu_aware(bool on) { gpu_aware_ = on; }

  // Scalars and small host vectors (bookkeeping, not counted in payload_bytes()), every rank
  // the same result.
  double sum(double x) const;
  void sum(std::vector<double>& v) const;  // each element summed over the ranks, in place
  bool any(bool flag) const;
  int min(int x) const;
  std::string broadcast_string(const std::string& s, int from) const;
  std::vector<std::string> allgather_strings(const std::string& s) const;  // every rank's s, by rank
  void barrier() const;

  // Runs `work` on every rank. If it throws on any rank, every rank throws the same
  // CollectiveError: the lowest failing rank's message ("rank 3: ..." in a job of several), so
  // no rank goes on into a collective that another will never join.
  void agree(const std::function<void()>& work) const;
  // agree() for a step whose failure may leave the other ranks inside a collective call that
  // this rank has left (parallel HDF5's: its errors are not collective). If this rank failed and
  // the others have not joined within `seconds`, stuck(message) runs: it reports and ends the job.
  // (agree() is this with no deadline: seconds < 0.)
  void agree_within(const std::function<void()>& work, double seconds,
                    const std::function<void(const std::string&)>& stuck) const;

  // v ← Σ over ranks of v (in place).
  template <class V>
  void allreduce_sum(const V& v);
  // recv ← this rank's slice of Σ over ranks of send (recv has slices.count[rank()] elements).
  template <class V, class W>
  void reduce_scatter_sum(const V& send, const W& recv, const Slices& slices);
  // Every rank's slice of v (its own filled in) becomes every rank's.
  template <class V>
  void allgather(const V& v, const Slices& slices);
  // Rank 0's v receives every rank's slice.
  template <class V>
  void gather_to_root(const V& v, const Slices& slices);
  template <class V>
  void broadcast(const V& v, int from);

  // Starts summing n doubles or floats in place over the ranks (host-accessible memory, or
  // device memory with gpu_aware); wait_all() completes every one started. On a communicator of
  // their own, so that the collectives above may run while these are in flight.
  template <class T>
  void start_allreduce_sum(T* data, Index n);
  // Starts gathering every rank's slice of data (its own filled in) in place, the same way.
  template <class T>
  void start_allgather(T* data, const Slices& slices);
  void wait_all();

  // Bytes this rank has handed to the array collectives above (each call's whole buffer: the
  // sum's, the gather's), the scalar ones left out: what `rewarm bench` reports per step.
  std::int64_t payload_bytes() const { return payload_bytes_; }

 private:
  enum class Op { Allreduce, ReduceScatter, Allgather, Gather, Broadcast };
  // The one place MPI meets memory: host-accessible pointers, after a fence.
  void run(Op op, void* data, void* recv, Index n, MPI_Datatype type, const Slices* slices, int root) const;
  template <class V>
  // v itself (host memory, or GPU memory when the MPI is CUDA-aware and device_ok), or a host
  // staging copy in staging_[slot].
  auto host_view(const V& v, int slot, bool device_ok = true);
  // An in-place collective on v: staged in, run, staged out (on rank 0 only for a gather).
  template <class V>
  void in_place(Op op, const V& v, const Slices* slices, int root);

  MPI_Comm comm_ = MPI_COMM_NULL, async_ = MPI_COMM_NULL;
  std::vector<MPI_Request> pending_;
  std::vector<std::vector<int>> pending_counts_;  // a nonblocking gather's counts and displacements, until it completes
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool gpu_aware_ = false;
  mutable std::int64_t payload_bytes_ = 0;
  std::vector<char> staging_[2];  // host copies of device data (two: reduce-scatter's send and recv)
};

template <class T>
MPI_Datatype mpi_type();

template <class V>
auto Comm::host_view(const V& v, int slot, bool device_ok) {
  using T = typename V::non_const_value_type;
  using Host = Kokkos::View<T*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  constexpr bool host_accessible = Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename V::memory_space>::accessible;
  if (host_accessible || (gpu_aware_ && device_ok)) return Host(const_cast<T*>(v.data()), v.size());
  auto& buf = staging_[slot];
  if (buf.size() < v.size() * sizeof(T)) buf.resize(v.size() * sizeof(T));
  return Host(reinterpret_cast<T*>(buf.data()), v.size());
}

// Before MPI: the device is done with v, and a staging copy holds it. After: back into v.
template <class V>  // any view as 1-D in its own memory space
auto flat_in_place(const V& v) {
  using T = typename V::non_const_value_type;
  return Kokkos::View<T*, typename V::memory_space, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(const_cast<T*>(v.data()),
                                                                                             v.size());
}
template <class H, class V>
void stage_in(const H& h, const V& v) {
  kx::fence("rewarm::comm");
  if (h.data() != v.data()) Kokkos::deep_copy(h, flat_in_place(v));
}
template <class H, class V>
void stage_out(const H& h, const V& v) {
  if (h.data() != v.data()) Kokkos::deep_copy(flat_in_place(v), h);
}

template <class V>
void Comm::in_place(Op op, const V& v, const Slices* slices, int root) {
  if (size_ == 1) return;
  auto h = host_view(v, 0);
  stage_in(h, v);
  run(op, h.data(), nullptr, Index(v.size()), mpi_type<typename V::non_const_value_type>(), slices, root);
  if (op != Op::Gather || rank_ == 0) stage_out(h, v);
}

template <class V>
void Comm::allreduce_sum(const V& v) {
  in_place(Op::Allreduce, v, nullptr, 0);
}

template <class V, class W>
void Comm::reduce_scatter_sum(const V& send, const W& recv, const Slices& slices) {
  if (size_ == 1) {
    kx::fence("rewarm::comm");
    Kokkos::deep_copy(flat_in_place(recv),
                      Kokkos::subview(flat_in_place(send), std::make_pair(Index(0), Index(recv.size()))));
    return;
  }
  // Staged even with CUDA-aware MPI: Open MPI's CUDA collectives cover MPI_Reduce_scatter_block,
  // not the varying-count MPI_Reduce_scatter that uneven slices need.
  auto hs = host_view(send, 0, false);
  auto hr = host_view(recv, 1, false);
  stage_in(hs, send);
  run(Op::ReduceScatter, hs.data(), hr.data(), Index(send.size()), mpi_type<typename V::non_const_value_type>(),
      &slices, 0);
  stage_out(hr, recv);
}

template <class V>
void Comm::allgather(const V& v, const Slices& slices) {
  in_place(Op::Allgather, v, &slices, 0);
}

template <class V>
void Comm::gather_to_root(const V& v, const Slices& slices) {
  in_place(Op::Gather, v, &slices, 0);
}

template <class V>
void Comm::broadcast(const V& v, int from) {
  in_place(Op::Broadcast, v, nullptr, from);
}

}  // namespace rewarm
