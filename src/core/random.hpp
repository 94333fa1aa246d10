// splitmix64 (Steele, Lea, Flood 2014): a tiny, portable, seedable generator. rewarm's random
// streams (init, synthetic corpora, shuffles) are built on it because std:: distributions
// differ between standard libraries.
#pragma once
#include <cstdint>

namespace rewarm {

inline constexpr std::uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;  // splitmix64's increment

// The output function: a bijective mix of 64 bits.
inline std::uint64_t splitmix64_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Advances the state and returns the next value of the stream.
inline std::uint64_t splitmix64_next(std::uint64_t& state) { return splitmix64_mix(state += kGoldenGamma); }

// Uniform double in (0, 1): 53 random bits, centred in their cell (never 0, for log()).
inline double splitmix64_uniform(std::uint64_t& state) {
  return (double(splitmix64_next(state) >> 11) + 0.5) * 0x1.0p-53;
}

}  // namespace rewarm
