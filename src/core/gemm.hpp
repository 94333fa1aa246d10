// The one GEMM interface: C = alpha·op(A)·op(B) + beta·C on row-major matrices, one at a time
// or as a strided batch, in the precision the run asks for. Nothing else in rewarm calls a BLAS.
//
//   fp32  on the host KokkosBlas::gemm (OpenBLAS), a batch a loop of them; on GPUs one
//         strided-batched cuBLAS/rocBLAS call on the Kokkos stream (rocBLAS without atomics, so
//         every run gives the same result), a single GEMM a batch of one.
//   bf16  inputs rounded to bfloat16 (round to nearest even), products accumulated and written in
//         fp32: cuBLAS's GemmStridedBatchedEx / rocBLAS's gemm_strided_batched_ex on GPUs; on the
//         host an exact emulation (the inputs rounded to bf16 values held in floats, then an fp32
//         GEMM), so the logic is tested in CI and a GPU run can be compared with it. An operand
//         that the kernel producing it already stored in bf16 (a Bf16Matrix: the attention's
//         probabilities) is read as it is; any other is converted by a pass of this class's own.
//   tf32  NVIDIA tensor cores with fp32 inputs (CUBLAS_COMPUTE_32F_FAST_TF32); refused elsewhere.
#pragma once
#include <KokkosKernels_config.h>

#include <string>

#include "core/gemm_precision.hpp"
#include "core/types.hpp"

// The vendor library this build calls for batches and bf16/tf32: cuBLAS in a CUDA build;
// rocBLAS in a HIP build whose Kokkos Kernels has it (or, for scripts/gpu_builds.sh's compile
// check against rocBLAS's headers where the library is missing, REWARM_COMPILE_CHECK_ROCBLAS);
// none elsewhere.
#if defined(KOKKOS_ENABLE_CUDA)
#define REWARM_CUBLAS 1
#elif defined(KOKKOS_ENABLE_HIP) && (defined(KOKKOSKERNELS_ENABLE_TPL_ROCBLAS) || defined(REWARM_COMPILE_CHECK_ROCBLAS))
#define REWARM_ROCBLAS 1
#endif

namespace rewarm {

// `p`, where this build can compute in it; else one line naming `where` (tf32 off NVIDIA GPUs).
GemmPrecision gemm_precision(GemmPrecision p, const std::string& where);
// parse_gemm_precision, then the same.
GemmPrecision gemm_precision(const std::string& name, const std::string& where);

// Rounds to the nearest bfloat16 (ties to even) and back to float: the value a bf16 GEMM sees.
KOKKOS_INLINE_FUNCTION float round_to_bf16(float x) {
  union {
    float f;
    std::uint32_t u;
  } v{x};
  if ((v.u & 0x7f800000u) == 0x7f800000u) return x;  // inf and NaN pass through
  v.u = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) & 0xffff0000u;
  return v.f;
}

#if defined(REWARM_CUBLAS) || defined(REWARM_ROCBLAS)
inline constexpr bool kVendorGemm = true;  // every GEMM through cuBLAS/rocBLAS
using Bf16Storage = std::uint16_t;         // bf16 bit patterns, as the library reads them
#else
inline constexpr bool kVendorGemm = false;
using Bf16Storage = float;  // the host emulation: floats holding bf16 values
#endif

// x as a bf16 GEMM input is stored: rounded to bf16, as bits or as a float.
KOKKOS_INLINE_FUNCTION Bf16Storage to_bf16_storage(float x) {
  if constexpr (kVendorGemm) {
    union {
      float f;
      std::uint32_t u;
    } v{round_to_bf16(x)};
    return Bf16Storage(v.u >> 16);
  } else {
    return Bf16Storage(round_to_bf16(x));
  }
}

// The float a stored bf16 value holds (exact).
KOKKOS_INLINE_FUNCTION float from_bf16_storage(Bf16Storage x) {
  if constexpr (kVendorGemm) {
    union {
      std::uint32_t u;
      float f;
    } v{std::uint32_t(x) << 16};
    return v.f;
  } else {
    return float(x);
  }
}

// A matrix that the kernel producing it stored in bf16 (to_bf16_storage) for a bf16 GEMM, which
// reads it as it is, with no conversion pass of its own.
struct Bf16Matrix {
  Matrix<Bf16Storage> m;
};

template <class T>
class Gemm {
 public:
  explicit Gemm(GemmPrecision precision = GemmPrecision::fp32);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // transA, transB: 'N' or 'T'
  void operator()(char transA, char transB, T alpha, const Matrix<T>& A, const Matrix<T>& B, T beta,
                  const Matrix<T>& C);
  // For i < count: C_i = alpha·op(A_i)·op(B_i) + beta·C_i, where X_i is the matrix of X's shape
  // starting stride_x·i elements after X's first.
  void batched(char transA, char transB, T alpha, const Matrix<T>& A, Index strideA, const Matrix<T>& B, Index strideB,
               T beta, const Matrix<T>& C, Index strideC, Index count);
  // The same with A or B already stored in bf16 (only for precision() == bf16): the attention's
  // probabilities (A), the weights' copy made once per change of the weights (B).
  void batched(char transA, char transB, T alpha, const Bf16Matrix& A, Index strideA, const Matrix<T>& B, Index strideB,
               T beta, const Matrix<T>& C, Index strideC, Index count);
  void batched(char transA, char transB, T alpha, const Matrix<T>& A, Index strideA, const Bf16Matrix& B, Index strideB,
               T beta, const Matrix<T>& C, Index strideC, Index count);
  // Both stored in bf16: an activation its producer wrote in bf16 (the fused attention's output)
  // times the weights' copy.
  void batched(char transA, char transB, T alpha, const Bf16Matrix& A, Index strideA, const Bf16Matrix& B,
               Index strideB, T beta, const Matrix<T>& C, Index strideC, Index count);
  void operator()(char transA, char transB, T alpha, const Matrix<T>& A, const Bf16Matrix& B, T beta,
                  const Matrix<T>& C) {
    batched(transA, transB, alpha, A, 0, B, 0, beta, C, 0, 1);
  }
  void operator()(char transA, char transB, T alpha, const Bf16Matrix& A, const Matrix<T>& B, T beta,
                  const Matrix<T>& C) {
    batched(transA, transB, alpha, A, 0, B, 0, beta, C, 0, 1);
  }
  void operator()(char transA, char transB, T alpha, const Bf16Matrix& A, const Bf16Matrix& B, T beta,
                  const Matrix<T>& C) {
    batched(transA, transB, alpha, A, 0, B, 0, beta, C, 0, 1);
  }

  // bf16: sizes the copies of the inputs now for operands spanning up to span_a / span_b
  // elements (a batch: from its first item's first element to its last item's last), so a run
  // allocates, and its memory check counts (scratch_bytes), all of it before the first step.
  void reserve(Index span_a, Index span_b);
  static std::size_t scratch_bytes(GemmPrecision precision, Index span_a, Index span_b);

  GemmPrecision precision() const { return precision_; }
  // Calls made so far, a batch counting once (one library call on GPUs; a loop on the host).
  Index calls() const { return calls_; }

 private:
  // The bf16 inputs converted by this class (to_bf16_storage), grown on demand.
  View1<Bf16Storage> bf16_a_, bf16_b_;
  GemmPrecision precision_;
  Index calls_ = 0;
  // The bf16 GEMM on inputs already stored in bf16 (a, b: first items, strides in elements).
  void bf16_batched(char ta, char tb, T alpha, const Bf16Storage* a, Index a_rows, Index a_cols, Index sA,
                    const Bf16Storage* b, Index b_rows, Index b_cols, Index sB, T beta, const Matrix<T>& C, Index sC,
                    Index count);
  void* handle_ = nullptr;  // the cuBLAS or rocBLAS handle, on GPUs
};

extern template class Gemm<float>;
extern template class Gemm<double>;

}  // namespace rewarm
