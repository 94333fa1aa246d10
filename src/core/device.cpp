#include "core/device.hpp"

#include <Kokkos_Core.hpp>
#include <cstdio>

#include "core/host_memory.hpp"

#if defined(KOKKOS_ENABLE_CUDA)
#include <cuda_runtime.h>
#elif defined(KOKKOS_ENABLE_HIP)
#include <hip/hip_runtime.h>
#endif

namespace rewarm {

DeviceProbe probe_devices() {
  DeviceProbe p;
  p.backend = Kokkos::DefaultExecutionSpace::name();
#if defined(KOKKOS_ENABLE_CUDA)
  p.gpu = true;
  const cudaError_t err = cudaGetDeviceCount(&p.count);
  if (err != cudaSuccess) p.count = 0, p.error = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
#elif defined(KOKKOS_ENABLE_HIP)
  p.gpu = true;
  const hipError_t err = hipGetDeviceCount(&p.count);
  if (err != hipSuccess) p.count = 0, p.error = std::string("hipGetDeviceCount: ") + hipGetErrorString(err);
#endif
  if (p.gpu && p.count == 0 && p.error.empty()) p.error = "no GPU is visible";
  return p;
}

MemoryBudget memory_budget() {
  MemoryBudget b;
#if defined(KOKKOS_ENABLE_CUDA)
  b.gpu = true;
  if (cudaMemGetInfo(&b.free, &b.total) != cudaSuccess) b.free = b.total = 0;
#elif defined(KOKKOS_ENABLE_HIP)
  b.gpu = true;
  if (hipMemGetInfo(&b.free, &b.total) != hipSuccess) b.free = b.total = 0;
#else
  const HostMemory host = host_memory();
  b.free = host.available, b.total = host.total, b.limited_by = host.limited_by;
#endif
  return b;
}

std::string gib(double bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f GiB", bytes / double(1ull << 30));
  return s;
}

std::string device_id_problem(int asked, int count) {
  if (asked < count) return "";
  return "GPU " + std::to_string(asked) + " was asked for (--kokkos-device-id or KOKKOS_DEVICE_ID) but " +
         std::to_string(count) + (count == 1 ? " is" : " are") + " visible";
}

std::string memory_problem(double need, const MemoryBudget& b) {
  if (b.total == 0 || need <= double(b.free)) return "";
  if (b.gpu) return "needs about " + gib(need) + " on the GPU but it has " + gib(double(b.free)) + " free of " + gib(double(b.total));
  return "needs about " + gib(need) + " of host memory but " + gib(double(b.free)) + " are available (" + b.limited_by +
         ", of " + gib(double(b.total)) + ")";
}

}  // namespace rewarm
