// Synthetic order-2 token sources with an exactly known entropy rate, for demos and tests.
// Each context (a, b) draws its next token from a context-specific permutation of one fixed
// distribution p, so every context has entropy H(p) and the source's entropy rate is H(p).
//
// Related corpora: with share = f, a fraction f of the contexts (the same ones for every
// corpus with the same shared_seed) take their permutation from shared_seed instead of seed.
// An "upstream" and a "downstream" with different seeds then agree exactly on those contexts
// and disagree on the rest, so training on one moves the loss on the other by a known amount
// of shared structure; both keep the entropy rate H(p).
//
// Domain mixtures (weights non-empty): D domains ("web", "code", ...) of one world, and a corpus
// is documents drawn from them in the proportions `weights`: two corpora with the same seeds and
// different weights are the Pile and SlimPajama in miniature (the same kinds of text, mixed
// differently). Each domain's alphabet is `vocab` symbols: vocab − P tokens that every domain
// uses and P tokens of its own (its jargon, by which a reader tells the domain), so the shard's
// vocabulary is vocab − P + D·P + 1, the last id being the end-of-document token. A document
// ends after each token with probability 1/doc_length; the next one picks its domain by weight
// and starts from the context (EOT, EOT). A context of shared tokens (or EOT) takes, with
// probability `share`, one permutation for every domain (ranks over the alphabet's slots: its
// private slots name each domain's own tokens); every other context has the domain's own.
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
  std::vector<double> weights;    // domain mixture: each domain's share of the documents
  Index private_tokens = 0;       // P: tokens of each domain's alphabet no other domain uses
  double doc_length = 256;        // mean document length (tokens), geometric
};

std::vector<double> synth_distribution(const SynthSpec& s);
Index synth_vocab(const SynthSpec& s);           // the shard's vocabulary size
// Nats/token: H(p); for a domain mixture, the rate given each document's domain, h(1/L) +
// (1 − 1/L)·H(p) (the rate itself exceeds it by at most synth_domain_choice_bound).
double synth_entropy_rate(const SynthSpec& s);
double synth_domain_choice_bound(const SynthSpec& s);  // (1/L)·H(weights): the domain's choice
// Next-token permutation of context (a, b): entry r is the token of rank r (probability p_r).
std::vector<std::uint32_t> synth_permutation(const SynthSpec& s, Index a, Index b);
// The same for domain d of a mixture (a, b are shard ids; the entries too).
std::vector<std::uint32_t> synth_domain_permutation(const SynthSpec& s, Index d, Index a, Index b);
std::vector<std::uint32_t> synth_tokens(const SynthSpec& s);

}  // namespace rewarm
