// Catch2 main: Kokkos is initialised once for all tests; in host builds invalid FP operations
// trap, so a NaN produced anywhere fails loudly instead of propagating (a GPU's kernels never
// trap; what the traps would catch there is cuBLAS's and the driver's own host code).
#define CATCH_CONFIG_RUNNER
#include <fenv.h>

#include <catch2/catch.hpp>

#include "core/types.hpp"
#include "io/hdf5.hpp"

int main(int argc, char** argv) {
  rewarm::h5::init_library();
  Kokkos::ScopeGuard kokkos(argc, argv);
  if (rewarm::kHostMemory) feenableexcept(FE_INVALID);
  return Catch::Session().run(argc, argv);
}
