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

static double entropy(const std::vector<double>& p) {
  double h = 0;
  for (double x : p)
    if (x > 0) h -= x * std::log(x);
  return h;
}

static bool is_mixture(const SynthSpec& s) { return !s.weights.empty(); }

static void check_mixture(const SynthSpec& s) {
  if (!is_mixture(s)) return;
  if (s.weights.size() > 64) throw Error("synth: at most 64 --weights (one per domain)");
  double total = 0;
  for (double w : s.weights) {
    if (!(w >= 0 && std::isfinite(w))) throw Error("synth: every --weights entry must be finite and >= 0");
    total += w;
  }
  if (!(total > 0)) throw Error("synth: --weights must not all be 0");
  if (s.private_tokens < 0 || s.private_tokens >= s.vocab)
    throw Error("synth: --private must lie in [0, vocab) (each domain's alphabet keeps a shared token)");
  if (!(s.doc_length >= 1 && std::isfinite(s.doc_length))) throw Error("synth: --doc-length must be >= 1");
  if (synth_vocab(s) > 65536) throw Error("synth: the mixture's vocabulary (vocab - P + D*P + 1) exceeds 65536");
}

Index synth_vocab(const SynthSpec& s) {
  if (!is_mixture(s)) return s.vocab;
  return s.vocab - s.private_tokens + Index(s.weights.size()) * s.private_tokens + 1;
}

static double binary_entropy(double q) { return q <= 0 || q >= 1 ? 0 : -q * std::log(q) - (1 - q) * std::log1p(-q); }

double synth_entropy_rate(const SynthSpec& s) {
  const double h = entropy(synth_distribution(s));
  if (!is_mixture(s)) return h;
  check_mixture(s);
  const double q = 1 / s.doc_length;
  return binary_entropy(q) + (1 - q) * h;
}

double synth_domain_choice_bound(const SynthSpec& s) {
  if (!is_mixture(s)) return 0;
  check_mixture(s);
  std::vector<double> w = s.weights;
  double total = std::accumulate(w.begin(), w.end(), 0.0);
  for (auto& x : w) x /= total;
  return entropy(w) / s.doc_length;
}

static std::uint64_t next_value(std::uint64_t z) { return splitmix64_next(z); }  // one step from state z

// Whether a context is shared depends on shared_seed alone: the same set in every corpus.
static bool shared_context(const SynthSpec& s, std::uint64_t context) {
  return double(next_value(s.shared_seed ^ next_value(context + 0x5bd1e995)) >> 11) * 0x1.0p-53 < s.share;
}

// The permutation of [0, vocab) that `language` gives `context` (Fisher-Yates).
static std::vector<std::uint32_t> shuffled(const SynthSpec& s, std::uint64_t language, std::uint64_t context) {
  std::uint64_t rng = next_value(language * kGoldenGamma + context);
  std::vector<std::uint32_t> q(std::size_t(s.vocab));
  std::iota(q.begin(), q.end(), 0u);
  for (Index i = s.vocab - 1; i > 0; --i) std::swap(q[i], q[splitmix64_next(rng) % std::uint64_t(i + 1)]);
  return q;
}

// The index of the first cdf entry above u (the last for u past them all).
static Index draw(const std::vector<double>& cdf, double u) {
  Index k = 0;
  while (k < Index(cdf.size()) - 1 && u >= cdf[std::size_t(k)]) ++k;
  return k;
}

std::vector<std::uint32_t> synth_permutation(const SynthSpec& s, Index a, Index b) {
  const std::uint64_t context = std::uint64_t(a * s.vocab + b);
  return shuffled(s, shared_context(s, context) ? s.shared_seed : s.seed, context);
}

// Domain d's permutation of context (a, b): ranks over its alphabet's slots (slot k < vocab − P
// is shared token k, slot vocab − P + j its private token j), mapped to shard ids.
std::vector<std::uint32_t> synth_domain_permutation(const SynthSpec& s, Index d, Index a, Index b) {
  const Index V = synth_vocab(s), S = s.vocab - s.private_tokens, eot = V - 1;
  const auto is_common = [&](Index t) { return t < S || t == eot; };
  const std::uint64_t context = std::uint64_t(a * V + b);
  const bool shared = is_common(a) && is_common(b) && shared_context(s, context);
  auto q = shuffled(s, shared ? s.shared_seed : next_value(s.seed * kGoldenGamma + std::uint64_t(d)), context);
  for (auto& slot : q)
    if (Index(slot) >= S) slot = std::uint32_t(S + d * s.private_tokens + (Index(slot) - S));
  return q;
}

// Documents of the domain mixture, each ended by EOT (see the header).
static std::vector<std::uint32_t> mixture_tokens(const SynthSpec& s) {
  check_mixture(s);
  const auto p = synth_distribution(s);
  const Index A = s.vocab, V = synth_vocab(s), D = Index(s.weights.size());
  const std::uint32_t eot = std::uint32_t(V - 1);
  std::vector<double> cdf(A), domain_cdf(D);
  std::partial_sum(p.begin(), p.end(), cdf.begin());
  std::partial_sum(s.weights.begin(), s.weights.end(), domain_cdf.begin());
  for (auto& c : domain_cdf) c /= domain_cdf.back();
  std::vector<std::uint32_t> perm;  // perm[((d·V + a)·V + b)·A + r]
  perm.reserve(std::size_t(D * V * V * A));
  for (Index d = 0; d < D; ++d)
    for (Index a = 0; a < V; ++a)
      for (Index b = 0; b < V; ++b) {
        const auto q = synth_domain_permutation(s, d, a, b);
        perm.insert(perm.end(), q.begin(), q.end());
      }
  std::uint64_t r = s.stream_seed;
  const auto pick = [&](const std::vector<double>& c) { return draw(c, splitmix64_uniform(r)); };
  Index d = pick(domain_cdf);
  std::uint32_t a = eot, b = eot;
  std::vector<std::uint32_t> out(std::size_t(s.tokens));
  for (auto& t : out) {
    if (splitmix64_uniform(r) < 1 / s.doc_length) {  // the document ends; the next picks its domain
      t = eot;
      d = pick(domain_cdf);
      a = b = eot;
      continue;
    }
    t = perm[std::size_t(((d * V + a) * V + b) * A + pick(cdf))];
    a = b;
    b = t;
  }
  return out;
}

std::vector<std::uint32_t> synth_tokens(const SynthSpec& s) {
  if (!(s.share >= 0 && s.share <= 1)) throw Error("synth: --share must lie in [0, 1]");
  if (is_mixture(s)) return mixture_tokens(s);
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
    t = perm[std::size_t((a * V + b) * V + draw(cdf, double(splitmix64_next(r) >> 11) * 0x1.0p-53))];
    a = b;
    b = t;
  }
  return out;
}

}  // namespace rewarm
