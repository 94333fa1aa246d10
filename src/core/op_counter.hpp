// Counts what the device is asked to do while a counter is alive — kernel launches, copies,
// fences — and the peak bytes Kokkos holds, through Kokkos' tool callbacks. For benchmarks:
// Kokkos' tool interface is process-wide, so only one counter may exist at a time.
#pragma once
#include <cstdint>

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
  // Largest total of live Kokkos allocations in the device's memory space since installed or reset.
  std::int64_t peak_bytes() const;
  void reset_peak();                // peak := what is live now
};

}  // namespace rewarm
