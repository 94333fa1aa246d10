// Softmax cross-entropy over the vocabulary, fused with its gradient.
#pragma once
#include "core/types.hpp"

namespace rewarm::layers {

// losses[N] = logsumexp(logits[n]) − logits[n, target[n]]. If grad_scale != 0 the logits are
// overwritten by grad_scale·(softmax − onehot(target)): the gradient of grad_scale·Σ losses.
template <class T>
void cross_entropy(const View1<double>& losses, const Matrix<T>& logits, const View1<int32_t>& targets,
                   double grad_scale) {
  const Index V = logits.extent(1);
  Kokkos::parallel_for(
      "rewarm::cross_entropy", Range(0, logits.extent(0)), KOKKOS_LAMBDA(Index n) {
        T m = logits(n, 0);
        for (Index v = 1; v < V; ++v) m = logits(n, v) > m ? logits(n, v) : m;
        const Index y = targets(n);
        const T target_logit = logits(n, y);
        double s = 0;
        if (grad_scale == 0) {
          for (Index v = 0; v < V; ++v) s += kx::exp(logits(n, v) - m);
        } else {  // keep exp(logit − max): the gradient needs each exponential once more
          for (Index v = 0; v < V; ++v) {
            const T e = kx::exp(logits(n, v) - m);
            logits(n, v) = e;
            s += e;
          }
        }
        losses(n) = double(m) + kx::log(s) - double(target_logit);
        if (grad_scale != 0) {
          const T f = T(grad_scale / s);
          for (Index v = 0; v < V; ++v) logits(n, v) *= f;
          logits(n, y) -= T(grad_scale);
        }
      });
}

}  // namespace rewarm::layers
