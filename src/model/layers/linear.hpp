// Linear layer with HF weight layout W[out,in]: y = x·Wᵀ + b.
#pragma once
#include "core/gemm.hpp"
#include "model/layers/elementwise.hpp"
#include "model/layers/stored.hpp"

namespace rewarm::layers {

// y[N,out] = x[N,in]·W[out,in]ᵀ + b[out]. W16: W's bf16 copy, where the GEMMs compute in bf16
// (the GEMMs read it instead of converting W at every call). x: a Matrix<T>, or a Bf16Matrix
// its producer stored in bf16.
template <class T, class X>
void linear_forward(Gemm<T>& gemm, const Matrix<T>& y, const X& x, const Matrix<T>& W, const Vector<T>& b,
                    const Bf16Matrix& W16 = {}) {
  if (W16.m.data())
    gemm('N', 'T', 1, x, W16, 0, y);
  else
    gemm('N', 'T', 1, x, W, 0, y);
  if (b.data()) add_bias(y, b);
}

// dx[N,in] = dy·W (or += when accumulate); dW[out,in] += dyᵀ·x; db[out] += Σrows dy
// (partials: the column reduction's scratch, column_scratch(N, out)); W16 as for the forward.
template <class T, class X>
void linear_backward(Gemm<T>& gemm, const Matrix<T>& dx, const Matrix<T>& dW, const Vector<T>& db, const Matrix<T>& dy,
                     const X& x, const Matrix<T>& W, const View1<T>& partials, bool accumulate_dx = false,
                     const Bf16Matrix& W16 = {}) {
  gemm('T', 'N', 1, dy, x, 1, dW);
  if (db.data()) add_column_sums(db, dy, partials);
  if (!dx.data()) return;
  if (W16.m.data())
    gemm('N', 'N', 1, dy, W16, accumulate_dx ? 1 : 0, dx);
  else
    gemm('N', 'N', 1, dy, W, accumulate_dx ? 1 : 0, dx);
}

// The same with x as its producer stored it (Stored<T>).
template <class T>
void linear_forward(Gemm<T>& gemm, const Matrix<T>& y, const Stored<T>& x, const Matrix<T>& W, const Vector<T>& b,
                    const Bf16Matrix& W16 = {}) {
  if (x.b16.m.data())
    linear_forward(gemm, y, x.b16, W, b, W16);
  else
    linear_forward(gemm, y, x.t, W, b, W16);
}
template <class T>
void linear_backward(Gemm<T>& gemm, const Matrix<T>& dx, const Matrix<T>& dW, const Vector<T>& db, const Matrix<T>& dy,
                     const Stored<T>& x, const Matrix<T>& W, const View1<T>& partials, bool accumulate_dx = false,
                     const Bf16Matrix& W16 = {}) {
  if (x.b16.m.data())
    linear_backward(gemm, dx, dW, db, dy, x.b16, W, partials, accumulate_dx, W16);
  else
    linear_backward(gemm, dx, dW, db, dy, x.t, W, partials, accumulate_dx, W16);
}

}  // namespace rewarm::layers
