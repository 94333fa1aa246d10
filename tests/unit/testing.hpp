// Helpers for kernel tests: random views, host copies, and a central finite-difference
// gradient check in double precision.
#pragma once
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace rewarm::testing {

// The repository's root: $REWARM_SOURCE_DIR when set (a copy of the tree elsewhere, as on a
// device machine), else the one the tests were built from.
inline std::string source_dir() {
  const char* env = std::getenv("REWARM_SOURCE_DIR");
  return env ? env : REWARM_SOURCE_DIR;
}

template <class T>
std::vector<T> to_vec(const View1<T>& v) {
  auto h = host_copy(v);
  return std::vector<T>(h.data(), h.data() + h.extent(0));
}
// The largest |a − b| over the largest |b|: how far a computation summed in another order lands.
template <class T>
double max_relative_difference(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return INFINITY;
  double big = 0, diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    big = std::max(big, double(std::abs(b[i]))), diff = std::max(diff, double(std::abs(a[i] - b[i])));
  return big > 0 ? diff / big : diff;
}
// Results the same computation gives when only its GEMMs are grouped differently: equal to the
// bit on the host (one BLAS call per matrix either way); on GPUs within `rel` of the largest
// magnitude, since cuBLAS/rocBLAS may choose another kernel for another batch count.
template <class T>
bool same_up_to_grouping(const std::vector<T>& a, const std::vector<T>& b, double rel) {
  if (kHostMemory || a.size() != b.size()) return a == b;
  return max_relative_difference(a, b) <= rel;
}

template <class T>
void from_vec(const View1<T>& v, const std::vector<T>& x) {
  auto h = Kokkos::create_mirror_view(v);
  for (std::size_t i = 0; i < x.size(); ++i) h(i) = x[i];
  Kokkos::deep_copy(v, h);
}
inline std::vector<double> random_vec(std::size_t n, unsigned seed, double lo = -1, double hi = 1) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> x(n);
  for (auto& v : x) v = u(g);
  return x;
}
inline View1<double> random_view(std::size_t n, unsigned seed, double lo = -1, double hi = 1) {
  View1<double> v("test", n);
  from_vec(v, random_vec(n, seed, lo, hi));
  return v;
}
// n floats drawn from N(0, 1).
inline View1<float> random_floats(Index n, unsigned seed) {
  View1<float> v("m", n);
  auto h = Kokkos::create_mirror_view(v);
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0, 1);
  for (Index i = 0; i < n; ++i) h(i) = d(g);
  Kokkos::deep_copy(v, h);
  return v;
}
template <class T>
Matrix<T> mat(const View1<T>& v, Index r, Index c) {
  return as_matrix(v.data(), r, c);
}
inline double dot(const View1<double>& a, const View1<double>& b) {
  auto x = to_vec(a), y = to_vec(b);
  double s = 0;
  for (std::size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

// For each (input, analytic gradient) pair, compares every element of the gradient with
// (loss(x + h) − loss(x − h)) / 2h. Returns the largest error relative to max(1, |fd|).
inline double max_fd_error(const std::function<double()>& loss,
                           const std::vector<std::pair<View1<double>, View1<double>>>& pairs, double h = 1e-6) {
  double worst = 0;
  for (const auto& [x, g] : pairs) {
    auto xs = to_vec(x), gs = to_vec(g);
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const double x0 = xs[i];
      xs[i] = x0 + h;
      from_vec(x, xs);
      const double lp = loss();
      xs[i] = x0 - h;
      from_vec(x, xs);
      const double lm = loss();
      xs[i] = x0;
      from_vec(x, xs);
      const double fd = (lp - lm) / (2 * h);
      worst = std::max(worst, std::abs(fd - gs[i]) / std::max(1.0, std::abs(fd)));
    }
  }
  loss();  // leave the outputs at the unperturbed point
  return worst;
}

}  // namespace rewarm::testing
