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

// The memory this process may still allocate where it computes: the current GPU's free and
// total memory (after Kokkos chose it), or on host backends what host_memory() reports.
struct MemoryBudget {
  std::size_t free = 0, total = 0;  // total 0: nothing known, nothing to check
  bool gpu = false;
  std::string limited_by;  // host: "MemAvailable" or the cgroup limit
};
MemoryBudget memory_budget();

// What is wrong, in words, or "" when nothing is: device `asked` (-1: not chosen) among `count`
// visible; `need` bytes against a budget.
std::string device_id_problem(int asked, int count);
std::string memory_problem(double need, const MemoryBudget& budget);
std::string gib(double bytes);  // "12.3 GiB"

}  // namespace rewarm
