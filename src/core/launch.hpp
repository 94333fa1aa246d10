// How the kernels are launched, chosen in one place for every backend: 2-D ranges over
// row-major data, and the team size of every TeamPolicy.
#pragma once
#include <algorithm>

#include "core/types.hpp"

namespace rewarm {

// ---- 2-D ranges --------------------------------------------------------------------------------
// f(n, j) over the elements of a row-major rows × cols array, right-major, in tiles one row high
// and up to kTileColumns wide. Kokkos' GPU MDRange maps threadIdx.x to the first index whatever
// the iteration order (impl/KokkosExp_IterateTileGPU.hpp), so only tiles one row high put
// adjacent threads on adjacent columns, and every load of a warp on one run of memory; on host
// backends a thread walks a tile's columns in order.
using Range2 = Kokkos::MDRangePolicy<ExecSpace, Kokkos::Rank<2, Kokkos::Iterate::Right, Kokkos::Iterate::Right>,
                                     Kokkos::IndexType<Index>>;
inline constexpr Index kTileColumns = 256;

template <class Policy>
inline constexpr bool kRowMajorRange =
    Policy::rank == 2 && Policy::outer_direction == Kokkos::Iterate::Right &&
    Policy::inner_direction == Kokkos::Iterate::Right;

inline Range2 rows_cols(Index rows, Index cols) {
  using Point = Range2::point_type;
  using Tile = Range2::tile_type;
  return Range2(Point{0, 0}, Point{rows, cols}, Tile{1, std::clamp<Index>(cols, 1, kTileColumns)});
}

// Every 2-D element-wise kernel of rewarm goes through here: a range in another order does not
// compile.
template <class Policy, class F>
void for_each_element(const char* label, const Policy& range, const F& f) {
  static_assert(kRowMajorRange<Policy>,
                "rewarm: a 2-D range over row-major data must iterate right-major (use rows_cols)");
  Kokkos::parallel_for(label, range, f);
}

// ---- teams -------------------------------------------------------------------------------------
using TeamPolicy = Kokkos::TeamPolicy<ExecSpace>;
using Team = TeamPolicy::member_type;

// The team size of every team kernel: REWARM_TEAM_SIZE=N where it is set (the tests run teams of
// 2 and 4 threads on the OpenMP backend, so that team barriers and team reductions run across
// threads as they do on a GPU), else Kokkos::AUTO (0): the backend's choice per kernel, which is
// one thread on host backends (a team per row then keeps every thread busy with no barrier).
int team_size();
// One line naming REWARM_TEAM_SIZE when it is not a size this backend can run (more threads than
// the OpenMP backend has); called once Kokkos runs.
void check_team_size();

// A team per league index. `vector`: the lanes a team thread has for its ThreadVectorRange on
// GPUs (a warp's 32 for a contiguous inner loop); host backends run vector ranges serially.
inline TeamPolicy team_policy(Index league, int vector = 1) {
  const int t = team_size();
  const int v = kHostMemory ? 1 : vector;
  return t > 0 ? TeamPolicy(league, t, v) : TeamPolicy(league, Kokkos::AUTO, v);
}

}  // namespace rewarm
