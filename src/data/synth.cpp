#include "data/synth.hpp"

#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "core/random.hpp"

namespace rewarm {

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

static std::uint64_t next_value(std::uint64_t z) { return splitmix64_next(z); }  // one step from state z

std::vector<std::uint32_t> synth_permutation(const SynthSpec& s, Index a, Index b) {
  const std::uint64_t context = std::uint64_t(a * s.vocab + b);
  // whether this context is shared depends on shared_seed alone: the same set in every corpus
  const double u = double(next_value(s.shared_seed ^ next_value(context + 0x5bd1e995)) >> 11) * 0x1.0p-53;
  std::uint64_t rng = next_value((u < s.share ? s.shared_seed : s.seed) * kGoldenGamma + context);
  std::vector<std::uint32_t> q(std::size_t(s.vocab));
  std::iota(q.begin(), q.end(), 0u);
  for (Index i = s.vocab - 1; i > 0; --i) std::swap(q[i], q[splitmix64_next(rng) % std::uint64_t(i + 1)]);  // Fisher-Yates
  return q;
}

std::vector<std::uint32_t> synth_tokens(const SynthSpec& s) {
  if (!(s.share >= 0 && s.share <= 1)) throw Error("synth: --share must lie in [0, 1]");
  const auto p = synth_distribution(s);
  const Index V = s.vocab;
  std::vector<double> cdf(V);
  std::partial_sum(p.begin(), p.end(), cdf.begin());
  std::vector<std::uint32_t> perm;  // perm[(a·V + b)·V + r] = token of rank r after context (a, b)
  for (Index a = 0; a < V; ++a)
    for (Index b = 0; b < V; ++b) {
      const auto q = synth_permutation(s, a, b);
      perm.insert(perm.end(), q.begin(), q.end());
    }
  std::vector<std::uint32_t> out(std::size_t(s.tokens));
  std::uint64_t r = s.stream_seed;
  std::uint32_t a = 0, b = 0;
  for (auto& t : out) {
    const double u = double(splitmix64_next(r) >> 11) * 0x1.0p-53;
    Index rank = 0;
    while (rank < V - 1 && u >= cdf[rank]) ++rank;
    t = perm[std::size_t((a * V + b) * V + rank)];
    a = b;
    b = t;
  }
  return out;
}

}  // namespace rewarm
