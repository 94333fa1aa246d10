#include "core/gemm.hpp"

#include <KokkosBlas3_gemm.hpp>

#include "core/error.hpp"

#if defined(REWARM_CUBLAS)
#include <cublas_v2.h>
#elif defined(REWARM_ROCBLAS)
#include <rocblas/rocblas.h>
#endif

namespace rewarm {

GemmPrecision gemm_precision(const std::string& name, const std::string& where) {
  return gemm_precision(parse_gemm_precision(name, where), where);
}

GemmPrecision gemm_precision(GemmPrecision p, const std::string& where) {
#if !defined(REWARM_CUBLAS)
  if (p == GemmPrecision::tf32)
    fail(where, "precision.gemm = \"tf32\" needs NVIDIA tensor cores (a CUDA build); this build runs on " +
                    std::string(ExecSpace::name()) + ": use \"fp32\" or \"bf16\"");
#else
  (void)where;  // every precision computes here
#endif
  return p;
}

namespace {

// Rows and columns of op(X).
template <class X>
Index op_rows(char t, const X& x) {
  return t == 'N' ? Index(x.extent(0)) : Index(x.extent(1));
}
template <class X>
Index op_cols(char t, const X& x) {
  return t == 'N' ? Index(x.extent(1)) : Index(x.extent(0));
}

// Every operand is a whole row-major matrix. A LayoutLeft view does not convert to a Matrix at
// all (a compile error); a strided sub-matrix (a column block of a larger matrix, which Kokkos 4
// types as LayoutRight too) would have its gaps read as elements by the batch strides, the
// leading dimensions and the bf16 copies below, so it is refused here.
template <class X>
void check_contiguous(const X& x) {
  if (x.extent(0) > 1 && Index(x.stride(0)) != Index(x.extent(1)))
    throw Error("gemm: '" + x.label() + "' is a strided sub-matrix (row stride " + std::to_string(x.stride(0)) +
                " for " + std::to_string(x.extent(1)) + " columns); pass a contiguous row-major matrix");
}
template <class A, class B, class C>
void check_shapes(char ta, const A& a, char tb, const B& b, const C& c) {
  check_contiguous(a), check_contiguous(b), check_contiguous(c);
  if (op_rows(ta, a) != Index(c.extent(0)) || op_rows(tb, b) != op_cols(ta, a) || op_cols(tb, b) != Index(c.extent(1)))
    throw Error("gemm: shapes do not agree");
}

template <class T>
void grow(View1<T>& v, Index n, const char* label) {
  if (Index(v.extent(0)) < n) v = View1<T>(Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing), n);
}

// The n elements from src as a bf16 GEMM reads them, in dst (grown on demand).
const Bf16Storage* stored_bf16(View1<Bf16Storage>& dst, const float* src, Index n, const char* label) {
  grow(dst, n, label);
  auto d = dst;
  Kokkos::parallel_for(
      "rewarm::gemm_to_bf16", Range(0, n), KOKKOS_LAMBDA(Index i) { d(i) = to_bf16_storage(src[i]); });
  return dst.data();
}

#if defined(REWARM_CUBLAS)
cublasOperation_t op(char t) { return t == 'N' ? CUBLAS_OP_N : CUBLAS_OP_T; }
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cuBLAS ") + what + " failed: " + cublasGetStatusString(s));
}
#elif defined(REWARM_ROCBLAS)
rocblas_operation op(char t) { return t == 'N' ? rocblas_operation_none : rocblas_operation_transpose; }
void check(rocblas_status s, const char* what) {
  if (s != rocblas_status_success)
    throw Error(std::string("rocBLAS ") + what + " failed: " + rocblas_status_to_string(s));
}
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
  grow(bf16_a_, span_a, "rewarm::gemm_bf16_a");
  grow(bf16_b_, span_b, "rewarm::gemm_bf16_b");
}

template <class T>
std::size_t Gemm<T>::scratch_bytes(GemmPrecision precision, Index span_a, Index span_b) {
  if (precision != GemmPrecision::bf16) return 0;
  return allocation_bytes(span_a, sizeof(Bf16Storage)) + allocation_bytes(span_b, sizeof(Bf16Storage));
}

template <class T>
void Gemm<T>::operator()(char ta, char tb, T alpha, const Matrix<T>& A, const Matrix<T>& B, T beta,
                         const Matrix<T>& C) {
  if (!kVendorGemm && precision_ == GemmPrecision::fp32) {
    check_shapes(ta, A, tb, B, C);
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
  check_shapes(ta, A, tb, B, C);
  const Index m = C.extent(0), n = C.extent(1);
  if (count == 0) return;
  // Elements from the first item's first to the last item's last: what bf16 converts.
  const Index span_a = sA * (count - 1) + Index(A.size()), span_b = sB * (count - 1) + Index(B.size());
  if (precision_ == GemmPrecision::bf16) {
    if constexpr (std::is_same_v<T, float>) {
      const auto a = stored_bf16(bf16_a_, A.data(), span_a, "rewarm::gemm_bf16_a");
      const auto b = stored_bf16(bf16_b_, B.data(), span_b, "rewarm::gemm_bf16_b");
      bf16_batched(ta, tb, alpha, a, A.extent(0), A.extent(1), sA, b, B.extent(0), B.extent(1), sB, beta, C, sC, count);
    }
    return;
  }
#if defined(REWARM_CUBLAS)
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: the operands swap.
  const auto h = static_cast<cublasHandle_t>(handle_);
  const int M = int(n), N = int(m), K = int(op_cols(ta, A)), lda = int(A.extent(1)), ldb = int(B.extent(1)), ldc = int(n);
  if constexpr (std::is_same_v<T, double>) {
    check(cublasDgemmStridedBatched(h, op(tb), op(ta), M, N, K, &alpha, B.data(), ldb, sB, A.data(), lda, sA, &beta,
                                    C.data(), ldc, sC, int(count)),
          "DgemmStridedBatched");
  } else {
    const auto compute = precision_ == GemmPrecision::tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    check(cublasGemmStridedBatchedEx(h, op(tb), op(ta), M, N, K, &alpha, B.data(), CUDA_R_32F, ldb, sB, A.data(),
                                     CUDA_R_32F, lda, sA, &beta, C.data(), CUDA_R_32F, ldc, sC, int(count), compute,
                                     CUBLAS_GEMM_DEFAULT),
          "GemmStridedBatchedEx");
  }
#elif defined(REWARM_ROCBLAS)
  // The same operand swap as for cuBLAS.
  const auto h = static_cast<rocblas_handle>(handle_);
  const rocblas_int M = rocblas_int(n), N = rocblas_int(m), K = rocblas_int(op_cols(ta, A)), lda = rocblas_int(A.extent(1)),
                    ldb = rocblas_int(B.extent(1)), ldc = rocblas_int(n), batches = rocblas_int(count);
  if constexpr (std::is_same_v<T, double>) {
    check(rocblas_dgemm_strided_batched(h, op(tb), op(ta), M, N, K, &alpha, B.data(), ldb, sB, A.data(), lda, sA, &beta,
                                        C.data(), ldc, sC, batches),
          "dgemm_strided_batched");
  } else {
    check(rocblas_sgemm_strided_batched(h, op(tb), op(ta), M, N, K, &alpha, B.data(), ldb, sB, A.data(), lda, sA, &beta,
                                        C.data(), ldc, sC, batches),
          "sgemm_strided_batched");
  }
#else
  // Host (and a GPU build without a vendor BLAS): one KokkosBlas::gemm per item.
  const char sa[2] = {ta, '\0'}, sb[2] = {tb, '\0'};
  for (Index i = 0; i < count; ++i)
    KokkosBlas::gemm(sa, sb, alpha, as_matrix(A.data() + i * sA, A.extent(0), A.extent(1)),
                     as_matrix(B.data() + i * sB, B.extent(0), B.extent(1)), beta, as_matrix(C.data() + i * sC, m, n));
#endif
  ++calls_;
}

template <class T>
void Gemm<T>::batched(char ta, char tb, T alpha, const Bf16Matrix& A, Index sA, const Matrix<T>& B, Index sB, T beta,
                      const Matrix<T>& C, Index sC, Index count) {
  check_shapes(ta, A.m, tb, B, C);
  if (precision_ != GemmPrecision::bf16) throw Error("gemm: an operand stored in bf16 needs precision bf16");
  if (count == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    const auto b = stored_bf16(bf16_b_, B.data(), sB * (count - 1) + Index(B.size()), "rewarm::gemm_bf16_b");
    bf16_batched(ta, tb, alpha, A.m.data(), A.m.extent(0), A.m.extent(1), sA, b, B.extent(0), B.extent(1), sB, beta, C,
                 sC, count);
  }
}

template <class T>
void Gemm<T>::batched(char ta, char tb, T alpha, const Matrix<T>& A, Index sA, const Bf16Matrix& B, Index sB, T beta,
                      const Matrix<T>& C, Index sC, Index count) {
  check_shapes(ta, A, tb, B.m, C);
  if (precision_ != GemmPrecision::bf16) throw Error("gemm: an operand stored in bf16 needs precision bf16");
  if (count == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    const auto a = stored_bf16(bf16_a_, A.data(), sA * (count - 1) + Index(A.size()), "rewarm::gemm_bf16_a");
    bf16_batched(ta, tb, alpha, a, A.extent(0), A.extent(1), sA, B.m.data(), B.m.extent(0), B.m.extent(1), sB, beta, C,
                 sC, count);
  }
}

template <class T>
void Gemm<T>::batched(char ta, char tb, T alpha, const Bf16Matrix& A, Index sA, const Bf16Matrix& B, Index sB, T beta,
                      const Matrix<T>& C, Index sC, Index count) {
  check_shapes(ta, A.m, tb, B.m, C);
  if (precision_ != GemmPrecision::bf16) throw Error("gemm: an operand stored in bf16 needs precision bf16");
  if (count == 0) return;
  bf16_batched(ta, tb, alpha, A.m.data(), A.m.extent(0), A.m.extent(1), sA, B.m.data(), B.m.extent(0), B.m.extent(1),
               sB, beta, C, sC, count);
}

template <class T>
void Gemm<T>::bf16_batched(char ta, char tb, T alpha, const Bf16Storage* a, Index a_rows, Index a_cols, Index sA,
                           const Bf16Storage* b, Index b_rows, Index b_cols, Index sB, T beta, const Matrix<T>& C,
                           Index sC, Index count) {
  if constexpr (std::is_same_v<T, float>) {
    const Index m = C.extent(0), n = C.extent(1), k = ta == 'N' ? a_cols : a_rows;
#if defined(REWARM_CUBLAS)
    const auto h = static_cast<cublasHandle_t>(handle_);  // operands swapped, as in batched()
    const int M = int(n), N = int(m), K = int(k), lda = int(a_cols), ldb = int(b_cols), ldc = int(n);
    check(cublasGemmStridedBatchedEx(h, op(tb), op(ta), M, N, K, &alpha, b, CUDA_R_16BF, ldb, sB, a, CUDA_R_16BF, lda,
                                     sA, &beta, C.data(), CUDA_R_32F, ldc, sC, int(count), CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT),
          "GemmStridedBatchedEx (bf16)");
    (void)b_rows;
#elif defined(REWARM_ROCBLAS)
    const auto h = static_cast<rocblas_handle>(handle_);  // rocBLAS writes D (here C itself) from C
    const rocblas_int M = rocblas_int(n), N = rocblas_int(m), K = rocblas_int(k), lda = rocblas_int(a_cols),
                      ldb = rocblas_int(b_cols), ldc = rocblas_int(n), batches = rocblas_int(count);
    check(rocblas_gemm_strided_batched_ex(h, op(tb), op(ta), M, N, K, &alpha, b, rocblas_datatype_bf16_r, ldb, sB, a,
                                          rocblas_datatype_bf16_r, lda, sA, &beta, C.data(), rocblas_datatype_f32_r,
                                          ldc, sC, C.data(), rocblas_datatype_f32_r, ldc, sC, batches,
                                          rocblas_datatype_f32_r, rocblas_gemm_algo_standard, 0, 0),
          "gemm_strided_batched_ex (bf16)");
    (void)b_rows;
#else
    // The emulation: floats holding bf16 values, an fp32 GEMM per item.
    (void)k;
    const char sa[2] = {ta, '\0'}, sb[2] = {tb, '\0'};
    for (Index i = 0; i < count; ++i)
      KokkosBlas::gemm(sa, sb, alpha, as_matrix(const_cast<float*>(a) + i * sA, a_rows, a_cols),
                       as_matrix(const_cast<float*>(b) + i * sB, b_rows, b_cols), beta,
                       as_matrix(C.data() + i * sC, m, n));
#endif
    ++calls_;
  } else {
    throw Error("bf16 GEMMs take float matrices");
  }
}

template class Gemm<float>;
template class Gemm<double>;

}  // namespace rewarm
