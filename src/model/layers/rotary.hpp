// Rotary position embedding on the first rd dims of each head's q and k (GPT-NeoX):
// x' = x·cos + rotate_half(x)·sin, rotate_half(x) = cat(−x[rd/2:rd], x[0:rd/2]).
#pragma once
#include <cmath>

#include "core/launch.hpp"

namespace rewarm::layers {

struct RotaryTables {
  View2<float> cos, sin;  // [max_pos, rd/2]
};

// θ = pos·inv_freq_j, inv_freq_j = base^(−2j/rd), both rounded to fp32 as HF computes them,
// so that angles at large positions agree with HF bit for bit before cos/sin.
inline RotaryTables make_rotary_tables(Index max_pos, Index rd, double base) {
  const Index half = rd / 2;
  RotaryTables t{View2<float>("rewarm::rope_cos", max_pos, half), View2<float>("rewarm::rope_sin", max_pos, half)};
  auto hc = Kokkos::create_mirror_view(t.cos);
  auto hs = Kokkos::create_mirror_view(t.sin);
  for (Index j = 0; j < half; ++j) {
    const float inv_freq =
        1.0f / static_cast<float>(std::pow(base, static_cast<float>(2 * j) / static_cast<float>(rd)));
    for (Index p = 0; p < max_pos; ++p) {
      const float theta = static_cast<float>(p) * inv_freq;
      hc(p, j) = static_cast<float>(std::cos(static_cast<double>(theta)));
      hs(p, j) = static_cast<float>(std::sin(static_cast<double>(theta)));
    }
  }
  Kokkos::deep_copy(t.cos, hc);
  Kokkos::deep_copy(t.sin, hs);
  return t;
}

// qkv[N,3d] (rows n = b·T + t, per head [q|k|v] of hd each), rotated in place: a thread per
// (row, pair of rotated columns), adjacent threads on adjacent columns of q or k of one head.
// inverse = true applies the transpose rotation: the backward pass of the forward one.
template <class T>
void rotary_apply(const Matrix<T>& qkv, const RotaryTables& tab, Index seq_len, Index heads, Index hd, Index rd,
                  bool inverse) {
  const Index half = rd / 2;
  if (half == 0) return;
  auto cosv = tab.cos;
  auto sinv = tab.sin;
  for_each_element(
      "rewarm::rotary", rows_cols(qkv.extent(0), 2 * heads * half), KOKKOS_LAMBDA(Index n, Index col) {
        const Index r = col / half, j = col - r * half;  // r: q (even) or k (odd) of head r / 2
        const Index c0 = (r >> 1) * 3 * hd + (r & 1) * hd, pos = n % seq_len;
        const T c = cosv(pos, j), s = inverse ? -T(sinv(pos, j)) : T(sinv(pos, j));
        const T x1 = qkv(n, c0 + j), x2 = qkv(n, c0 + j + half);
        qkv(n, c0 + j) = x1 * c - x2 * s;
        qkv(n, c0 + j + half) = x2 * c + x1 * s;
      });
}

}  // namespace rewarm::layers
