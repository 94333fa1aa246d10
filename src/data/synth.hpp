// Synthetic order-2 token sources with an exactly known entropy rate, for demos and tests.
// Each context (a, b) draws its next token from a context-specific permutation of one fixed
// distribution p, so every context has entropy H(p) and the source's entropy rate is H(p).
//
// Related corpora: with share = f, a fraction f of the contexts (the same ones for every
// corpus with the same shared_seed) take their permutation from shared_seed instead of seed.
// An "upstream" and a "downstream" with different seeds then agree exactly on those contexts
// and disagree on the rest, so training on one moves the loss on the other by a known amount
// of shared structure; both keep the entropy rate H(p).
#pragma once
#include <cstdint>
#include <vector>

#include "core/index.hpp"

namespace rewarm {

struct SynthSpec {
  Index vocab = 16;               // token ids [0, vocab)
  Index tokens = 1 << 20;         // length of the stream
  double decay = 0.5;             // p_i ∝ decay^i: smaller is more predictable
  std::uint64_t seed = 1;         // picks the permutations (the "language")
  std::uint64_t stream_seed = 2;  // picks the sampled text
  double share = 0;               // fraction of contexts taken from shared_seed
  std::uint64_t shared_seed = 0;  // the structure related corpora have in common
};

std::vector<double> synth_distribution(const SynthSpec& s);
double synth_entropy_rate(const SynthSpec& s);  // H(p) in nats/token
// Next-token permutation of context (a, b): entry r is the token of rank r (probability p_r).
std::vector<std::uint32_t> synth_permutation(const SynthSpec& s, Index a, Index b);
std::vector<std::uint32_t> synth_tokens(const SynthSpec& s);

}  // namespace rewarm
