#include "core/device.hpp"

#include <Kokkos_Core.hpp>
#include <cstdio>

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

void device_memory(std::size_t& free_bytes, std::size_t& total_bytes) {
  free_bytes = total_bytes = 0;
#if defined(KOKKOS_ENABLE_CUDA)
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) free_bytes = total_bytes = 0;
#elif defined(KOKKOS_ENABLE_HIP)
  if (hipMemGetInfo(&free_bytes, &total_bytes) != hipSuccess) free_bytes = total_bytes = 0;
#endif
}

static std::string gib(double bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f GiB", bytes / double(1ull << 30));
  return s;
}

std::string device_id_problem(int asked, int count) {
  if (asked < count) return "";
  return "GPU " + std::to_string(asked) + " was asked for (--kokkos-device-id or KOKKOS_DEVICE_ID) but " +
         std::to_string(count) + (count == 1 ? " is" : " are") + " visible";
}

std::string memory_problem(double need, std::size_t free, std::size_t total) {
  if (total == 0 || need <= double(free)) return "";
  return "needs about " + gib(need) + " on the GPU but it has " + gib(double(free)) + " free of " + gib(double(total));
}

}  // namespace rewarm
