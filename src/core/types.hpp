// Scalar and View aliases used across rewarm.
#pragma once
#include <cstdint>

#include "core/index.hpp"
#include "core/kokkos_compat.hpp"

namespace rewarm {

using ExecSpace = Kokkos::DefaultExecutionSpace;
using MemSpace = ExecSpace::memory_space;

template <class T>
using View1 = Kokkos::View<T*, Kokkos::LayoutRight, MemSpace>;
template <class T>
using View2 = Kokkos::View<T**, Kokkos::LayoutRight, MemSpace>;
// A matrix inside a flat buffer (parameters, activations): no ownership.
template <class T>
using Matrix = Kokkos::View<T**, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
template <class T>
using Vector = Kokkos::View<T*, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

using Range = Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<Index>>;

// Host copy of a device view, uninitialised (spelt so that 3.4 and 4.x both accept it).
template <class V>
auto host_copy(const V& v) {
  auto h = Kokkos::create_mirror_view(Kokkos::view_alloc(Kokkos::HostSpace(), Kokkos::WithoutInitializing), v);
  Kokkos::deep_copy(h, v);
  return h;
}

}  // namespace rewarm
