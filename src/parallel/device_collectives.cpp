#include "parallel/device_collectives.hpp"

#include <cstring>
#include <map>

#include "core/env.hpp"
#include "core/error.hpp"

// NCCL with CUDA, RCCL with HIP (where the build found it, or for scripts/gpu_builds.sh's
// compile check against RCCL's headers): the same calls; the runtimes' names differ only in
// their prefix (REWARM_GPU) and in how Kokkos names its stream.
#if defined(REWARM_NCCL) && defined(KOKKOS_ENABLE_CUDA)
#include <cuda_runtime.h>
#include <nccl.h>
#define REWARM_DEVICE_COLLECTIVES "NCCL"
#define REWARM_GPU(name) cuda##name
#define REWARM_KOKKOS_STREAM cuda_stream
#elif (defined(REWARM_RCCL) || defined(REWARM_COMPILE_CHECK_RCCL)) && defined(KOKKOS_ENABLE_HIP)
#include <hip/hip_runtime.h>
#include <rccl/rccl.h>
#define REWARM_DEVICE_COLLECTIVES "RCCL"
#define REWARM_GPU(name) hip##name
#define REWARM_KOKKOS_STREAM hip_stream
#endif

#if defined(REWARM_DEVICE_COLLECTIVES)
namespace rewarm::gpu {
using Stream = REWARM_GPU(Stream_t);
using Event = REWARM_GPU(Event_t);
using Status = REWARM_GPU(Error_t);
inline Stream compute_stream() { return ExecSpace().REWARM_KOKKOS_STREAM(); }
inline Status stream_create(Stream* s) { return REWARM_GPU(StreamCreateWithFlags)(s, REWARM_GPU(StreamNonBlocking)); }
inline Status event_create(Event* e) { return REWARM_GPU(EventCreateWithFlags)(e, REWARM_GPU(EventDisableTiming)); }
inline Status event_record(Event e, Stream s) { return REWARM_GPU(EventRecord)(e, s); }
inline Status stream_wait(Stream s, Event e) { return REWARM_GPU(StreamWaitEvent)(s, e, 0); }
inline void destroy(Stream s, Event a, Event b) {
  if (a) (void)REWARM_GPU(EventDestroy)(a);
  if (b) (void)REWARM_GPU(EventDestroy)(b);
  if (s) (void)REWARM_GPU(StreamDestroy)(s);
}
inline const char* message(Status s) { return REWARM_GPU(GetErrorString)(s); }
inline constexpr Status kSuccess = REWARM_GPU(Success);
}  // namespace rewarm::gpu
#endif

namespace rewarm {

std::string broadcast_unique_id(const Comm& comm, const std::function<std::string()>& make_id) {
  std::string id;
  comm.agree([&] {
    if (comm.root()) id = make_id();
  });
  return comm.broadcast_string(id, 0);
}

std::string ranks_sharing_a_gpu(const Comm& comm, const std::string& gpu) {
  const std::string host = host_name();
  const auto where = comm.allgather_strings(host + '\n' + gpu);
  std::map<std::string, std::size_t> first;  // each (host, GPU) and the first rank on it
  for (std::size_t r = 0; r < where.size(); ++r) {
    const auto [seen, fresh] = first.emplace(where[r], r);
    if (fresh) continue;
    const auto cut = where[r].find('\n');
    return "ranks " + std::to_string(seen->second) + " and " + std::to_string(r) + " share GPU " +
           where[r].substr(cut + 1) + " on " + where[r].substr(0, cut);
  }
  return "";
}

#if defined(REWARM_DEVICE_COLLECTIVES)
namespace {
void check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string(REWARM_DEVICE_COLLECTIVES " ") + what + " failed: " + ncclGetErrorString(r));
}
void check(gpu::Status s, const char* what) {
  if (s != gpu::kSuccess) throw Error(std::string(what) + " failed: " + gpu::message(s));
}
ncclDataType_t type_of(const double*) { return ncclFloat64; }
ncclDataType_t type_of(const float*) { return ncclFloat32; }
}  // namespace

struct DeviceCollectives::Impl {
  ncclComm_t comm = nullptr;
  gpu::Stream stream = nullptr;          // the collectives'
  gpu::Event computed = nullptr, reduced = nullptr;
  ~Impl() {
    if (comm) ncclCommDestroy(comm);
    gpu::destroy(stream, computed, reduced);
  }
  // The collective stream waits for what the compute stream holds now.
  void after_compute() {
    check(gpu::event_record(computed, gpu::compute_stream()), "recording an event");
    check(gpu::stream_wait(stream, computed), "ordering the collective stream");
  }
  template <class T>
  void allreduce(T* data, Index n) {
    after_compute();
    check(ncclAllReduce(data, data, std::size_t(n), type_of(data), ncclSum, comm, stream), "all-reduce");
  }
  // Unequal slices (the last may be shorter): one reduce to each slice's owner, grouped.
  template <class T>
  void reduce_scatter(const T* send, T* recv, const Slices& s) {
    after_compute();
    check(ncclGroupStart(), "group start");
    for (std::size_t r = 0; r < s.offset.size(); ++r)
      check(ncclReduce(send + s.offset[r], recv, std::size_t(s.count[r]), type_of(send), ncclSum, int(r), comm, stream),
            "reduce");
    check(ncclGroupEnd(), "reduce-scatter");
  }
};

DeviceCollectives::DeviceCollectives(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeviceCollectives::~DeviceCollectives() = default;

std::unique_ptr<DeviceCollectives> DeviceCollectives::create(Comm& comm, std::string* why_not) {
  if (comm.size() == 1) {
    *why_not = "one rank";
    return nullptr;
  }
  std::string bus(64, '\0');  // this rank's GPU (Kokkos made it current), unique on its node
  comm.agree([&] {
    int device = 0;
    check(REWARM_GPU(GetDevice)(&device), "querying the GPU");
    check(REWARM_GPU(DeviceGetPCIBusId)(bus.data(), int(bus.size()), device), "querying the GPU's PCI bus id");
  });
  bus.resize(std::strlen(bus.c_str()));
  const std::string shared = ranks_sharing_a_gpu(comm, bus);
  if (!shared.empty()) {  // NCCL would refuse ("duplicate GPU"); MPI sums them, staged through the host
    *why_not = shared;
    return nullptr;
  }
  const std::string id = broadcast_unique_id(comm, [] {
    ncclUniqueId u;
    check(ncclGetUniqueId(&u), "ncclGetUniqueId");
    return std::string(u.internal, sizeof u.internal);
  });
  auto impl = std::make_unique<Impl>();
  comm.agree([&] {
    ncclUniqueId u;
    std::memcpy(u.internal, id.data(), sizeof u.internal);
    check(gpu::stream_create(&impl->stream), "creating the collective stream");
    check(gpu::event_create(&impl->computed), "creating an event");
    check(gpu::event_create(&impl->reduced), "creating an event");
    check(ncclCommInitRank(&impl->comm, comm.size(), u, comm.rank()), "ncclCommInitRank");
  });
  return std::unique_ptr<DeviceCollectives>(new DeviceCollectives(std::move(impl)));
}

std::string DeviceCollectives::description() const {
  int v = 0;
  ncclGetVersion(&v);  // e.g. 22809: major·10000 + minor·100 + patch
  return std::string(REWARM_DEVICE_COLLECTIVES " ") + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) +
         "." + std::to_string(v % 100);
}

void DeviceCollectives::start_allreduce_sum(double* data, Index n) {
  payload_bytes_ += n * Index(sizeof(double));
  impl_->allreduce(data, n);
}
void DeviceCollectives::start_allreduce_sum(float* data, Index n) {
  payload_bytes_ += n * Index(sizeof(float));
  impl_->allreduce(data, n);
}
void DeviceCollectives::start_reduce_scatter_sum(const double* send, double* recv, const Slices& s) {
  payload_bytes_ += s.total() * Index(sizeof(double));
  impl_->reduce_scatter(send, recv, s);
}
void DeviceCollectives::start_reduce_scatter_sum(const float* send, float* recv, const Slices& s) {
  payload_bytes_ += s.total() * Index(sizeof(float));
  impl_->reduce_scatter(send, recv, s);
}
void DeviceCollectives::start_allgather(float* data, const Slices& s) {  // in place: a broadcast from each owner
  payload_bytes_ += s.total() * Index(sizeof(float));
  impl_->after_compute();
  check(ncclGroupStart(), "group start");
  for (std::size_t r = 0; r < s.offset.size(); ++r)
    check(ncclBroadcast(data + s.offset[r], data + s.offset[r], std::size_t(s.count[r]), ncclFloat32, int(r),
                        impl_->comm, impl_->stream),
          "broadcast");
  check(ncclGroupEnd(), "all-gather");
}
void DeviceCollectives::join() {
  check(gpu::event_record(impl_->reduced, impl_->stream), "recording an event");
  check(gpu::stream_wait(gpu::compute_stream(), impl_->reduced), "ordering the compute stream");
}

#else
// Builds without NCCL/RCCL: the gradients go through MPI.
struct DeviceCollectives::Impl {};
DeviceCollectives::DeviceCollectives(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeviceCollectives::~DeviceCollectives() = default;
std::unique_ptr<DeviceCollectives> DeviceCollectives::create(Comm& comm, std::string* why_not) {
  *why_not = comm.size() == 1 ? "one rank" : kHostMemory ? "host memory: MPI" : "this build has no NCCL/RCCL";
  return nullptr;
}
// Never made (create returns null), so never called.
[[noreturn]] static void none() { throw Error("this build has no NCCL/RCCL"); }
std::string DeviceCollectives::description() const { none(); }
void DeviceCollectives::start_allreduce_sum(double*, Index) { none(); }
void DeviceCollectives::start_allreduce_sum(float*, Index) { none(); }
void DeviceCollectives::start_reduce_scatter_sum(const double*, double*, const Slices&) { none(); }
void DeviceCollectives::start_reduce_scatter_sum(const float*, float*, const Slices&) { none(); }
void DeviceCollectives::start_allgather(float*, const Slices&) { none(); }
void DeviceCollectives::join() { none(); }
#endif

}  // namespace rewarm
