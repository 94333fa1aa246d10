// Catch2 main: Kokkos is initialised once for all tests; invalid FP operations trap, so a NaN
// produced anywhere fails loudly instead of propagating.
#define CATCH_CONFIG_RUNNER
#include <fenv.h>

#include <catch2/catch.hpp>

#include "core/types.hpp"
#include "io/hdf5.hpp"

int main(int argc, char** argv) {
  rewarm::h5::init_library();
  Kokkos::ScopeGuard kokkos(argc, argv);
  feenableexcept(FE_INVALID);
  return Catch::Session().run(argc, argv);
}
