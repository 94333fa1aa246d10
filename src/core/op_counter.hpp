// Counts what the device is asked to do while a counter is alive — kernel launches, copies,
// fences — and the peak bytes Kokkos holds, through Kokkos' tool callbacks, and on request times
// each kernel. For benchmarks: Kokkos' tool interface is process-wide, so only one counter may
// exist at a time. (Kokkos 4 would fence around every kernel while tool callbacks are set, which
// changes what a GPU step costs; rewarm asks it not to before it starts: kx::no_tool_fences.)
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rewarm {

class OpCounter {
 public:
  struct Counts {
    std::int64_t kernels = 0, copies = 0, fences = 0;
  };
  OpCounter();   // installs the callbacks (before the allocations it should see)
  ~OpCounter();  // removes them
  OpCounter(const OpCounter&) = delete;
  OpCounter& operator=(const OpCounter&) = delete;

  Counts counts() const;
  void reset_counts();
  // While on, the time of every kernel by label, each fenced before and after (on GPUs the
  // fences lengthen a step: time a step of its own). Seconds per label since switched on.
  void time_kernels(bool on);
  std::vector<std::pair<std::string, double>> kernel_seconds() const;  // longest first
  // Largest total of live Kokkos allocations in the device's memory space since installed or reset.
  std::int64_t peak_bytes() const;
  void reset_peak();                // peak := what is live now
};

}  // namespace rewarm
