#include "core/gemm.hpp"

#include <KokkosBlas3_gemm.hpp>
#include <KokkosKernels_config.h>

#include "core/error.hpp"

// The vendor library this build calls for batches and bf16/tf32: cuBLAS in a CUDA build;
// rocBLAS in a HIP build whose Kokkos Kernels has it (or, for scripts/gpu_builds.sh's compile
// check against rocBLAS's headers where the library is missing, REWARM_COMPILE_CHECK_ROCBLAS);
// none elsewhere.
#if defined(KOKKOS_ENABLE_CUDA)
#include <cublas_v2.h>
#define REWARM_CUBLAS 1
#elif defined(KOKKOS_ENABLE_HIP) && (defined(KOKKOSKERNELS_ENABLE_TPL_ROCBLAS) || defined(REWARM_COMPILE_CHECK_ROCBLAS))
#include <rocblas/rocblas.h>
#define REWARM_ROCBLAS 1
#endif

namespace rewarm {

GemmPrecision gemm_precision(const std::string& name, const std::string& where) {
  const auto p = parse_gemm_precision(name, where);
#if !defined(REWARM_CUBLAS)
  if (p == GemmPrecision::tf32)
    fail(where, "precision.gemm = \"tf32\" needs NVIDIA tensor cores (a CUDA build); this build runs on " +
                    std::string(ExecSpace::name()) + ": use \"fp32\" or \"bf16\"");
#endif
  return p;
}

namespace {

// Rows and columns of op(X).
template <class T>
Index op_rows(char t, const Matrix<T>& X) {
  return t == 'N' ? Index(X.extent(0)) : Index(X.extent(1));
}
template <class T>
Index op_cols(char t, const Matrix<T>& X) {
  return t == 'N' ? Index(X.extent(1)) : Index(X.extent(0));
}

template <class T>
void grow(View1<T>& v, Index n, const char* label) {
  if (Index(v.extent(0)) < n) v = View1<T>(Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing), n);
}

// The values a bf16 GEMM reads: X rounded element by element into dst (same shape).
template <class T>
Matrix<T> rounded_copy(View1<T>& dst, const Matrix<T>& X, Index count_matrices_span, const char* label) {
  grow(dst, count_matrices_span, label);
  const T* src = X.data();
  auto d = dst;
  Kokkos::parallel_for(
      "rewarm::gemm_round_bf16", Range(0, count_matrices_span),
      KOKKOS_LAMBDA(Index i) { d(i) = T(round_to_bf16(float(src[i]))); });
  return as_matrix(dst.data(), X.extent(0), X.extent(1));
}

#if defined(REWARM_CUBLAS)
cublasOperation_t op(char t) { return t == 'N' ? CUBLAS_OP_N : CUBLAS_OP_T; }
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cuBLAS ") + what + " failed: " + cublasGetStatusString(s));
}
#elif defined(REWARM_ROCBLAS)
rocblas_operation op(char t) { return t == 'N' ? rocblas_operation_none : rocblas_operation_transpose; }
void check(rocblas_status s, const char* what) {
  if (s != rocblas_status_success) throw Error(std::string("rocBLAS ") + what + " failed: " + rocblas_status_to_string(s));
}
#endif

#if defined(REWARM_CUBLAS) || defined(REWARM_ROCBLAS)
constexpr bool kVendorGemm = true;  // every GEMM on this class's handle

// bf16 copies of X (as uint16 bit patterns, rounded to nearest even) for the vendor GEMM.
View1<std::uint16_t> to_bf16(View1<std::uint16_t>& dst, const float* src, Index n) {
  grow(dst, n, "rewarm::gemm_bf16");
  auto d = dst;
  Kokkos::parallel_for(
      "rewarm::gemm_to_bf16", Range(0, n), KOKKOS_LAMBDA(Index i) {
        union {
          float f;
          std::uint32_t u;
        } v{round_to_bf16(src[i])};
        d(i) = std::uint16_t(v.u >> 16);
      });
  return dst;
}
#else
constexpr bool kVendorGemm = false;
#endif

}  // namespace

template <class T>
Gemm<T>::Gemm(GemmPrecision precision) : precision_(precision) {
  if (precision != GemmPrecision::fp32 && !std::is_same_v<T, float>)
    throw Error("bf16 and tf32 GEMMs take float matrices");
#if defined(REWARM_CUBLAS)
  cublasHandle_t h;
  check(cublasCreate(&h), "create");
  check(cublasSetStream(h, ExecSpace().cuda_stream()), "set stream");
  handle_ = h;
#elif defined(REWARM_ROCBLAS)
  rocblas_handle h;
  check(rocblas_create_handle(&h), "create handle");
  check(rocblas_set_stream(h, ExecSpace().hip_stream()), "set stream");
  check(rocblas_set_atomics_mode(h, rocblas_atomics_not_allowed), "set atomics mode");  // same result every run
  handle_ = h;
#endif
}

template <class T>
Gemm<T>::~Gemm() {
#if defined(REWARM_CUBLAS)
  if (handle_) cublasDestroy(static_cast<cublasHandle_t>(handle_));
#elif defined(REWARM_ROCBLAS)
  if (handle_) rocblas_destroy_handle(static_cast<rocblas_handle>(handle_));
#endif
}

template <class T>
void Gemm<T>::reserve(Index span_a, Index span_b) {
  if (precision_ != GemmPrecision::bf16) return;
  if constexpr (kVendorGemm) {
    grow(bf16_a_, span_a, "rewarm::gemm_bf16");
    grow(bf16_b_, span_b, "rewarm::gemm_bf16");
  } else {
    grow(scratch_a_, span_a, "rewarm::gemm_bf16_a");
    grow(scratch_b_, span_b, "rewarm::gemm_bf16_b");
  }
}

template <class T>
std::size_t Gemm<T>::scratch_bytes(GemmPrecision precision, Index span_a, Index span_b) {
  if (precision != GemmPrecision::bf16) return 0;
  const std::size_t elem = kVendorGemm ? sizeof(std::uint16_t) : sizeof(T);
  auto padded = [&](Index n) { return (std::size_t(n) * elem + 7) / 8 * 8; };  // as Kokkos allocates
  return padded(span_a) + padded(span_b);
}

template <class T>
void Gemm<T>::operator()(char ta, char tb, T alpha, const Matrix<T>& A, const Matrix<T>& B, T beta, const Matrix<T>& C) {
  if (!kVendorGemm && precision_ == GemmPrecision::fp32) {
    const char sa[2] = {ta, '\0'}, sb[2] = {tb, '\0'};
    KokkosBlas::gemm(sa, sb, alpha, A, B, beta, C);  // the 7-argument form: Kokkos Kernels 3.4 and 4.x
    ++calls_;
    return;
  }
  batched(ta, tb, alpha, A, 0, B, 0, beta, C, 0, 1);
}

template <class T>
void Gemm<T>::batched(char ta, char tb, T alpha, const Matrix<T>& A, Index sA, const Matrix<T>& B, Index sB, T beta,
                      const Matrix<T>& C, Index sC, Index count) {
  const Index m = C.extent(0), n = C.extent(1), k = op_cols(ta, A);
  if (op_rows(ta, A) != m || op_rows(tb, B) != k || op_cols(tb, B) != n) throw Error("gemm: shapes do not agree");
  if (count == 0) return;
  // Elements from the first item's first to the last item's last: what bf16 copies.
  const Index span_a = sA * (count - 1) + Index(A.size()), span_b = sB * (count - 1) + Index(B.size());
#if defined(REWARM_CUBLAS)
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: the operands swap.
  const auto h = static_cast<cublasHandle_t>(handle_);
  const int M = int(n), N = int(m), K = int(k), lda = int(A.extent(1)), ldb = int(B.extent(1)), ldc = int(n);
  if constexpr (std::is_same_v<T, double>) {
    check(cublasDgemmStridedBatched(h, op(tb), op(ta), M, N, K, &alpha, B.data(), ldb, sB, A.data(), lda, sA, &beta,
                                    C.data(), ldc, sC, int(count)),
          "DgemmStridedBatched");
  } else if (precision_ == GemmPrecision::bf16) {
    const auto a16 = to_bf16(bf16_a_, A.data(), span_a), b16 = to_bf16(bf16_b_, B.data(), span_b);
    check(cublasGemmStridedBatchedEx(h, op(tb), op(ta), M, N, K, &alpha, b16.data(), CUDA_R_16BF, ldb, sB, a16.data(),
                                     CUDA_R_16BF, lda, sA, &beta, C.data(), CUDA_R_32F, ldc, sC, int(count),
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "GemmStridedBatchedEx (bf16)");
  } else {
    const auto compute = precision_ == GemmPrecision::tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    check(cublasGemmStridedBatchedEx(h, op(tb), op(ta), M, N, K, &alpha, B.data(), CUDA_R_32F, ldb, sB, A.data(),
                                     CUDA_R_32F, lda, sA, &beta, C.data(), CUDA_R_32F, ldc, sC, int(count), compute,
                                     CUBLAS_GEMM_DEFAULT),
          "GemmStridedBatchedEx");
  }
  ++calls_;
#elif defined(REWARM_ROCBLAS)
  // The same operand swap as for cuBLAS; rocBLAS writes D (here C itself) from C.
  const auto h = static_cast<rocblas_handle>(handle_);
  const rocblas_int M = rocblas_int(n), N = rocblas_int(m), K = rocblas_int(k), lda = rocblas_int(A.extent(1)),
                    ldb = rocblas_int(B.extent(1)), ldc = rocblas_int(n), batches = rocblas_int(count);
  if constexpr (std::is_same_v<T, double>) {
    check(rocblas_dgemm_strided_batched(h, op(tb), op(ta), M, N, K, &alpha, B.data(), ldb, sB, A.data(), lda, sA, &beta,
                                        C.data(), ldc, sC, batches),
          "dgemm_strided_batched");
  } else if (precision_ == GemmPrecision::bf16) {
    const auto a16 = to_bf16(bf16_a_, A.data(), span_a), b16 = to_bf16(bf16_b_, B.data(), span_b);
    check(rocblas_gemm_strided_batched_ex(h, op(tb), op(ta), M, N, K, &alpha, b16.data(), rocblas_datatype_bf16_r, ldb,
                                          sB, a16.data(), rocblas_datatype_bf16_r, lda, sA, &beta, C.data(),
                                          rocblas_datatype_f32_r, ldc, sC, C.data(), rocblas_datatype_f32_r, ldc, sC,
                                          batches, rocblas_datatype_f32_r, rocblas_gemm_algo_standard, 0, 0),
          "gemm_strided_batched_ex (bf16)");
  } else {
    check(rocblas_sgemm_strided_batched(h, op(tb), op(ta), M, N, K, &alpha, B.data(), ldb, sB, A.data(), lda, sA, &beta,
                                        C.data(), ldc, sC, batches),
          "sgemm_strided_batched");
  }
  ++calls_;
#else
  // Host (and a GPU build without a vendor BLAS): one KokkosBlas::gemm per item, on bf16-rounded
  // copies of the inputs when asked.
  Matrix<T> a = A, b = B;
  if (precision_ == GemmPrecision::bf16) {
    a = rounded_copy(scratch_a_, A, span_a, "rewarm::gemm_bf16_a");
    b = rounded_copy(scratch_b_, B, span_b, "rewarm::gemm_bf16_b");
  }
  const char sa[2] = {ta, '\0'}, sb[2] = {tb, '\0'};
  for (Index i = 0; i < count; ++i)
    KokkosBlas::gemm(sa, sb, alpha, as_matrix(a.data() + i * sA, a.extent(0), a.extent(1)),
                     as_matrix(b.data() + i * sB, b.extent(0), b.extent(1)), beta,
                     as_matrix(C.data() + i * sC, m, n));
  ++calls_;
#endif
}

template class Gemm<float>;
template class Gemm<double>;

}  // namespace rewarm
