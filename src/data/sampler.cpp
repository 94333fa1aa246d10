#include "data/sampler.hpp"

#include "core/error.hpp"
#include "core/random.hpp"

namespace rewarm {

static std::uint64_t mix(std::uint64_t z) { return splitmix64_mix(z); }

Index feistel_permute(Index i, Index n, int half_bits, std::uint64_t key) {
  const std::uint64_t mask = (std::uint64_t(1) << half_bits) - 1;
  std::uint64_t x = std::uint64_t(i);
  do {
    std::uint64_t l = x >> half_bits, r = x & mask;
    for (int round = 0; round < 4; ++round) {
      const std::uint64_t f = mix(r ^ mix(key + std::uint64_t(round) * kGoldenGamma)) & mask;
      const std::uint64_t nl = r;
      r = l ^ f;
      l = nl;
    }
    x = (l << half_bits) | r;
  } while (x >= std::uint64_t(n));  // at most 4× the domain: expected < 4 walks
  return Index(x);
}

WindowSampler::WindowSampler(Index num_windows, bool shuffle, std::uint64_t seed)
    : n_(num_windows), shuffle_(shuffle), seed_(seed), half_bits_(1) {
  if (n_ <= 0) throw Error("a data set has no complete window of seq_len + 1 tokens");
  while ((Index(1) << (2 * half_bits_)) < n_) ++half_bits_;
}

Index WindowSampler::operator()(Index k) const {
  const Index epoch = k / n_, i = k % n_;
  if (!shuffle_) return i;
  return feistel_permute(i, n_, half_bits_, mix(seed_ ^ mix(std::uint64_t(epoch) + 1)));
}

}  // namespace rewarm
