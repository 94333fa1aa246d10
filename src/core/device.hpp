// What accelerator this build computes on, and whether this machine has one, asked of the vendor
// runtime before Kokkos starts: a CUDA or HIP build on a login node (driver, no GPU) then
// fails with one line instead of aborting inside Kokkos' initialisation.
#pragma once
#include <cstddef>
#include <string>

namespace rewarm {

struct DeviceProbe {
  std::string backend;  // "CUDA", "HIP", or the host backend ("Serial", "OpenMP")
  bool gpu = false;     // the build computes on a GPU
  int count = 1;        // GPUs visible to this process (1 for host backends)
  std::string error;    // why none is usable (the runtime's own message), empty if fine
};
DeviceProbe probe_devices();

// Free and total memory of the current device (after Kokkos chose it); host backends: 0, 0.
void device_memory(std::size_t& free_bytes, std::size_t& total_bytes);

// What is wrong, in words, or "" when nothing is: device `asked` (-1: not chosen) among `count`
// visible; `need` bytes on a device with `free` of `total` (total 0: no report, nothing to check).
std::string device_id_problem(int asked, int count);
std::string memory_problem(double need, std::size_t free, std::size_t total);

}  // namespace rewarm
