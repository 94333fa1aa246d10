// Must not compile: a 2-D range in left-major order over row-major data. On GPUs adjacent threads
// would walk adjacent rows, and every load of a warp would be strided (core/launch.hpp).
#include "core/launch.hpp"

int main() {
  using Left = Kokkos::MDRangePolicy<rewarm::ExecSpace, Kokkos::Rank<2, Kokkos::Iterate::Left, Kokkos::Iterate::Left>,
                                     Kokkos::IndexType<rewarm::Index>>;
  rewarm::for_each_element("rewarm::wrong_order", Left({0, 0}, {2, 3}), KOKKOS_LAMBDA(rewarm::Index, rewarm::Index){});
}
