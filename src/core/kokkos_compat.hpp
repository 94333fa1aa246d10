// Everything that differs between Debian's Kokkos 3.4 and Kokkos 4.x lives here.
#pragma once
#include <Kokkos_Core.hpp>
#include <cstdint>

namespace rewarm::kx {

// Math functions: Kokkos::Experimental:: before 3.7, Kokkos:: after (4.4 dropped the old names).
#if KOKKOS_VERSION < 30700  // remove when Kokkos >= 3.7 is required
using Kokkos::Experimental::cos;
using Kokkos::Experimental::erf;
using Kokkos::Experimental::exp;
using Kokkos::Experimental::log;
using Kokkos::Experimental::sin;
using Kokkos::Experimental::sqrt;
using Kokkos::Experimental::tanh;
#else
using Kokkos::cos;
using Kokkos::erf;
using Kokkos::exp;
using Kokkos::log;
using Kokkos::sin;
using Kokkos::sqrt;
using Kokkos::tanh;
#endif

// Host memory the device copies from asynchronously (page-locked on GPUs).
#if defined(KOKKOS_ENABLE_CUDA)
using PinnedSpace = Kokkos::CudaHostPinnedSpace;
#elif defined(KOKKOS_ENABLE_HIP) && KOKKOS_VERSION >= 40000
using PinnedSpace = Kokkos::HIPHostPinnedSpace;
#elif defined(KOKKOS_ENABLE_HIP)  // remove when Kokkos >= 4 is required
using PinnedSpace = Kokkos::Experimental::HIPHostPinnedSpace;
#else
using PinnedSpace = Kokkos::HostSpace;
#endif

// Labelled fences exist from 3.5 on.
inline void fence(const char* label) {
#if KOKKOS_VERSION < 30500  // remove when Kokkos >= 3.5 is required
  (void)label;
  Kokkos::fence();
#else
  Kokkos::fence(label);
#endif
}

// Before Kokkos starts: Kokkos 4 fences around every kernel while tool callbacks are set (so that
// a tool times kernels by host clocks) unless told its tools do not need it. rewarm's only tool,
// the benchmark's OpCounter, fences itself where it times; a GPU step is then what it costs.
inline void no_tool_fences() {
#if KOKKOS_VERSION >= 40000  // remove the guard when Kokkos >= 4 is required
  Kokkos::Tools::Experimental::set_request_tool_settings_callback(
      [](const std::uint32_t, Kokkos::Tools::Experimental::ToolSettings* settings) {
        settings->requires_global_fencing = false;
      });
#endif
}

}  // namespace rewarm::kx
