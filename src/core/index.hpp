// The index type of sizes and offsets; no Kokkos here, so host-only code can use it.
#pragma once
#include <cstdint>

namespace rewarm {
using Index = std::int64_t;
}  // namespace rewarm
