// Which window global sample k reads: in order, or a seeded shuffle that is a pure function of
// (seed, k) — no state to save, O(1) memory for any shard size, identical on every rank.
#pragma once
#include <cstdint>

#include "core/types.hpp"

namespace rewarm {

class WindowSampler {
 public:
  WindowSampler(Index num_windows, bool shuffle, std::uint64_t seed);
  // Epoch e = k / n reads a fresh permutation of [0, n).
  Index operator()(Index k) const;

 private:
  Index n_;
  bool shuffle_;
  std::uint64_t seed_;
  int half_bits_;
};

// A bijection of [0, n) keyed by `key`: a 4-round Feistel network on the next even bit width,
// cycle-walking values that fall outside [0, n).
Index feistel_permute(Index i, Index n, int half_bits, std::uint64_t key);

}  // namespace rewarm
