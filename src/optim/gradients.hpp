// The gradient of one optimizer step, summed over micro-batches and ranks in double: every
// micro-batch gradient is a float, so their double sum is exact in practice (it needs the
// values of one element to span less than ~2^29), which makes the step's gradient the same
// whatever the order of the sum, that is whatever the rank count.
#pragma once
#include "core/types.hpp"

namespace rewarm {

// acc[i] = g[i] (first micro-batch of the step) or acc[i] += g[i]
template <class T>
void accumulate_gradient(const Vector<double>& acc, const Vector<T>& g, bool first) {
  Kokkos::parallel_for(
      "rewarm::grad_accumulate", Range(0, g.extent(0)), KOKKOS_LAMBDA(Index i) {
        acc(i) = first ? double(g(i)) : acc(i) + double(g(i));
      });
}

// g[i] = acc[i], rounded to the working precision
template <class T>
void round_gradient(const Vector<T>& g, const Vector<double>& acc) {
  Kokkos::parallel_for(
      "rewarm::grad_round", Range(0, g.extent(0)), KOKKOS_LAMBDA(Index i) { g(i) = T(acc(i)); });
}

}  // namespace rewarm
