// Scalar and View aliases used across rewarm.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "core/error.hpp"
#include "core/index.hpp"
#include "core/kokkos_compat.hpp"

namespace rewarm {

using ExecSpace = Kokkos::DefaultExecutionSpace;
using MemSpace = ExecSpace::memory_space;
using PinnedSpace = kx::PinnedSpace;  // host staging for uploads
// The device's memory is the host's (Serial, OpenMP builds).
inline constexpr bool kHostMemory = Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible;

template <class T>
using View1 = Kokkos::View<T*, Kokkos::LayoutRight, MemSpace>;
template <class T>
using View2 = Kokkos::View<T**, Kokkos::LayoutRight, MemSpace>;
// A matrix inside a flat buffer (parameters, activations): no ownership.
template <class T>
using Matrix = Kokkos::View<T**, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
template <class T>
using Vector = Kokkos::View<T*, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

// Bytes Kokkos allocates for a View of n elements of `elem` bytes (each allocation padded to 8):
// what the memory estimates add up.
inline std::size_t allocation_bytes(Index n, std::size_t elem) { return (std::size_t(n) * elem + 7) / 8 * 8; }

// The one way to view memory as a Matrix or Vector (no copy, no ownership).
template <class T>
Matrix<T> as_matrix(T* p, Index rows, Index cols) {
  return Matrix<T>(p, rows, cols);
}
template <class T>
Vector<T> as_vector(T* p, Index n) {
  return Vector<T>(p, n);
}
// Views of rewarm's own row-major buffers only: a LayoutLeft view would come out transposed,
// so it does not compile; a strided LayoutRight one (a column block of a larger matrix, which
// Kokkos 4 types as LayoutRight) has gaps that neither form can describe, so it is refused.
template <class V>
void check_row_major_contiguous(const V& v, const char* what) {
  static_assert(std::is_same_v<typename V::array_layout, Kokkos::LayoutRight>,
                "rewarm: as_matrix/flat take row-major (LayoutRight) views only");
  if (v.span() != v.size())
    throw Error(std::string(what) + ": view '" + v.label() + "' is strided, not contiguous");
}
// Item 0 of `count` rows × cols matrices `stride` elements apart, the first `offset` elements
// into the flat view v: a matrix (or a strided batch of them) cut out of a buffer, such as a score
// tile or a parameter block. Kokkos' bounds checks see indices within a view, not where a raw
// pointer into a buffer lands, and a GEMM library sees neither: the cut is checked here, on the
// host, against the buffer's end.
template <class V>
auto batch_matrix(const V& v, Index offset, Index rows, Index cols, Index stride = 0, Index count = 1) {
  const Index end = offset + (count > 0 ? (count - 1) * stride : 0) + rows * cols;
  if (offset < 0 || rows < 0 || cols < 0 || stride < 0 || end > Index(v.size()))
    throw Error("'" + v.label() + "': " + std::to_string(count) + " matrices of " + std::to_string(rows) + " x " +
                std::to_string(cols) + " from element " + std::to_string(offset) + " (stride " + std::to_string(stride) +
                ") end at " + std::to_string(end) + ", past its " + std::to_string(v.size()) + " elements");
  return as_matrix(v.data() + offset, rows, cols);
}
template <class V>  // a rank-2 view as a Matrix
auto as_matrix(const V& v) {
  static_assert(V::rank == 2, "rewarm: as_matrix(view) takes a rank-2 view");
  check_row_major_contiguous(v, "as_matrix");
  return as_matrix(v.data(), Index(v.extent(0)), Index(v.extent(1)));
}
template <class V>  // any view, all its elements in row-major order
auto flat(const V& v) {
  check_row_major_contiguous(v, "flat");
  return as_vector(v.data(), Index(v.size()));
}

using Range = Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<Index>>;

// Host copy of a device view, uninitialised (spelt so that 3.4 and 4.x both accept it).
template <class V>
auto host_copy(const V& v) {
  auto h = Kokkos::create_mirror_view(Kokkos::view_alloc(Kokkos::HostSpace(), Kokkos::WithoutInitializing), v);
  Kokkos::deep_copy(h, v);
  return h;
}

}  // namespace rewarm
