// Must not compile: a column-major (LayoutLeft) view taken as a Matrix of rewarm's row-major
// buffers would come out transposed (core/types.hpp).
#include "core/types.hpp"

int main() {
  Kokkos::View<float**, Kokkos::LayoutLeft, rewarm::MemSpace> v("v", 2, 3);
  return int(rewarm::as_matrix(v).extent(0));
}
