// How much memory this process may still take on its host: the kernel's MemAvailable, and the
// cgroup limit where one is set (a SLURM job's --mem, a container's), whichever is smaller.
// Kokkos-free: the memory check of host builds, and tests with made-up /proc and /sys trees.
#pragma once
#include <cstddef>
#include <string>

namespace rewarm {

struct HostMemory {
  std::size_t available = 0;  // bytes this process may still allocate
  std::size_t total = 0;      // the limit those come from (MemTotal or the cgroup limit)
  std::string limited_by;     // "MemAvailable", or "the cgroup limit (/slurm/uid_0/job_42)"
};

// `root` prefixes /proc and /sys (tests); "" reads this machine's.
HostMemory host_memory(const std::string& root = "");

}  // namespace rewarm
