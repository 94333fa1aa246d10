// Synthetic order-2 token sources with an exactly known entropy rate, for demos and tests.
// Each context (a, b) draws its next token from a context-specific permutation of one fixed
// distribution p, so every context has entropy H(p) and the source's entropy rate is H(p).
#pragma once
#include <cstdint>
#include <vector>

#include "core/types.hpp"

namespace rewarm {

struct SynthSpec {
  Index vocab = 16;               // token ids [0, vocab)
  Index tokens = 1 << 20;         // length of the stream
  double decay = 0.5;             // p_i ∝ decay^i: smaller is more predictable
  std::uint64_t seed = 1;         // picks the permutations (the "language")
  std::uint64_t stream_seed = 2;  // picks the sampled text
};

std::vector<double> synth_distribution(const SynthSpec& s);
double synth_entropy_rate(const SynthSpec& s);  // H(p) in nats/token
std::vector<std::uint32_t> synth_tokens(const SynthSpec& s);

}  // namespace rewarm
