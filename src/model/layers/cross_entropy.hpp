// Softmax cross-entropy over the vocabulary, fused with its gradient: one team per row.
#pragma once
#include "model/layers/elementwise.hpp"

namespace rewarm::layers {

// losses[N] = logsumexp(logits[n]) − logits[n, target[n]]. If grad_scale != 0 the logits are
// overwritten by grad_scale·(softmax − onehot(target)): the gradient of grad_scale·Σ losses.
template <class T>
void cross_entropy(const View1<double>& losses, const Matrix<T>& logits, const View1<int32_t>& targets,
                   double grad_scale) {
  const Index V = logits.extent(1);
  Kokkos::parallel_for(
      "rewarm::cross_entropy", team_policy(logits.extent(0)), KOKKOS_LAMBDA(const Team& m) {
        const Index n = m.league_rank(), y = targets(n);
        T mx;
        Kokkos::parallel_reduce(
            Kokkos::TeamVectorRange(m, V), [&](Index v, T& acc) { acc = logits(n, v) > acc ? logits(n, v) : acc; },
            Kokkos::Max<T>(mx));
        const T target_logit = logits(n, y);
        m.team_barrier();  // read by every thread before any overwrites it
        double s = 0;
        // the gradient needs each exponential once more: keep exp(logit − max) in place
        Kokkos::parallel_reduce(
            Kokkos::TeamVectorRange(m, V),
            [&](Index v, double& acc) {
              const T e = kx::exp(logits(n, v) - mx);
              if (grad_scale != 0) logits(n, v) = e;
              acc += e;
            },
            s);
        Kokkos::single(Kokkos::PerTeam(m), [&] { losses(n) = double(mx) + kx::log(s) - double(target_logit); });
        if (grad_scale == 0) return;
        m.team_barrier();  // every exponential is written before the row is rescaled
        const T f = T(grad_scale / s);
        Kokkos::parallel_for(Kokkos::TeamVectorRange(m, V),
                             [&](Index v) { logits(n, v) = logits(n, v) * f - (v == y ? T(grad_scale) : T(0)); });
      });
}

// hit[n] = 1 where target[n] is the row's argmax (the first of equal maxima, as torch.argmax),
// else 0: a greedy decoder would have produced the target (lm-eval's single-choice accuracy).
template <class T>
void target_is_argmax(const View1<int32_t>& hit, const Matrix<T>& logits, const View1<int32_t>& targets) {
  const Index V = logits.extent(1);
  Kokkos::parallel_for(
      "rewarm::target_is_argmax", team_policy(logits.extent(0)), KOKKOS_LAMBDA(const Team& m) {
        const Index n = m.league_rank();
        T mx;
        Kokkos::parallel_reduce(
            Kokkos::TeamVectorRange(m, V), [&](Index v, T& acc) { acc = logits(n, v) > acc ? logits(n, v) : acc; },
            Kokkos::Max<T>(mx));
        Index first;
        Kokkos::parallel_reduce(
            Kokkos::TeamVectorRange(m, V), [&](Index v, Index& acc) { acc = logits(n, v) == mx && v < acc ? v : acc; },
            Kokkos::Min<Index>(first));
        Kokkos::single(Kokkos::PerTeam(m), [&] { hit(n) = first == Index(targets(n)) ? 1 : 0; });
      });
}

}  // namespace rewarm::layers
