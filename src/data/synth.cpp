#include "data/synth.hpp"

#include <cmath>
#include <numeric>

#include "core/error.hpp"

namespace rewarm {

static std::uint64_t next(std::uint64_t& s) {  // splitmix64
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<double> synth_distribution(const SynthSpec& s) {
  if (s.vocab < 2 || s.vocab > 256)
    throw Error("synth: --vocab must lie in [2, 256] (one permutation per context pair)");
  if (!(s.decay > 0 && s.decay <= 1)) throw Error("synth: decay must lie in (0, 1]");
  std::vector<double> p(s.vocab);
  for (Index i = 0; i < s.vocab; ++i) p[i] = std::pow(s.decay, double(i));
  const double z = std::accumulate(p.begin(), p.end(), 0.0);
  for (auto& x : p) x /= z;
  return p;
}

double synth_entropy_rate(const SynthSpec& s) {
  double h = 0;
  for (double x : synth_distribution(s))
    if (x > 0) h -= x * std::log(x);
  return h;
}

std::vector<std::uint32_t> synth_tokens(const SynthSpec& s) {
  const auto p = synth_distribution(s);
  const Index V = s.vocab;
  std::vector<double> cdf(V);
  std::partial_sum(p.begin(), p.end(), cdf.begin());
  // perm[(a·V + b)·V + r] = token of rank r after context (a, b)
  std::vector<std::uint32_t> perm(std::size_t(V * V * V));
  std::uint64_t rng = s.seed;
  for (Index c = 0; c < V * V; ++c) {
    auto* q = perm.data() + c * V;
    std::iota(q, q + V, 0u);
    for (Index i = V - 1; i > 0; --i) std::swap(q[i], q[next(rng) % std::uint64_t(i + 1)]);  // Fisher-Yates
  }
  std::vector<std::uint32_t> out(std::size_t(s.tokens));
  std::uint64_t r = s.stream_seed;
  std::uint32_t a = 0, b = 0;
  for (auto& t : out) {
    const double u = double(next(r) >> 11) * 0x1.0p-53;
    Index rank = 0;
    while (rank < V - 1 && u >= cdf[rank]) ++rank;
    t = perm[std::size_t((a * V + b) * V + rank)];
    a = b;
    b = t;
  }
  return out;
}

}  // namespace rewarm
