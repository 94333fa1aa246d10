// The one GEMM interface: C = alpha * op(A) * op(B) + beta * C on row-major matrices.
// KokkosBlas::gemm dispatches to OpenBLAS on the host and cuBLAS/rocBLAS on GPUs.
#pragma once
#include <KokkosBlas3_gemm.hpp>

#include "core/types.hpp"

namespace rewarm {

// transA/transB: 'N' or 'T'. The 7-argument form exists in Kokkos Kernels 3.4 and 4.x.
template <class T>
void gemm(char transA, char transB, T alpha, const Matrix<T>& A, const Matrix<T>& B, T beta, const Matrix<T>& C) {
  const char ta[2] = {transA, '\0'}, tb[2] = {transB, '\0'};
  KokkosBlas::gemm(ta, tb, alpha, A, B, beta, C);
}

}  // namespace rewarm
