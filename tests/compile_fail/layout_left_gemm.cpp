// Must not compile: a column-major (LayoutLeft) view as an operand of the GEMM, which reads its
// operands as row-major (core/gemm.hpp): Kokkos refuses to convert it to a Matrix.
#include "core/gemm.hpp"

int main() {
  Kokkos::View<float**, Kokkos::LayoutLeft, rewarm::MemSpace> a("a", 2, 2);
  rewarm::Gemm<float> gemm;
  gemm('N', 'N', 1.0f, a, a, 0.0f, a);
}
