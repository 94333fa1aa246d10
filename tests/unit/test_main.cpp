// Catch2 main: Kokkos is initialised once for all tests; in host builds invalid FP operations
// trap, so a NaN produced anywhere fails loudly instead of propagating (a GPU's kernels never
// trap; what the traps would catch there is cuBLAS's and the driver's own host code).
#define CATCH_CONFIG_RUNNER
#include <fenv.h>

#include <cstdio>

#include <catch2/catch.hpp>

#include "core/launch.hpp"
#include "io/hdf5.hpp"

int main(int argc, char** argv) {
  rewarm::h5::init_library();
  Kokkos::ScopeGuard kokkos(argc, argv);
  try {
    rewarm::check_team_size();
  } catch (const rewarm::Error& e) {
    std::fprintf(stderr, "rewarm_tests: %s\n", e.what());
    return 2;
  }
  if (rewarm::kHostMemory) feenableexcept(FE_INVALID);
  return Catch::Session().run(argc, argv);
}
