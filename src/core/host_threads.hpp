// The threads of a rank on host backends, and what a run says it computes on.
//
// On the OpenMP backend the kernels and the GEMMs take turns: a kernel's threads wait while
// OpenBLAS computes, and OpenBLAS's threads wait while the kernels run. Threads that spin while
// they wait take the cores the others need (bench/RESULTS.md: the GEMM rate halved with two
// spinning pools on two cores), so rewarm's threads sleep when idle: OMP_WAIT_POLICY=passive.
// The OpenMP runtime reads that variable once, when it loads, before main; where it is unset,
// settle_openmp_environment sets it (and OMP_PROC_BIND=false, no binding, where that is unset)
// and runs the program again in the same process (execv), so that a plain `rewarm train` gets
// it too. Setting OMP_WAIT_POLICY yourself, to any value, keeps your choice.
#pragma once
#include <string>

namespace rewarm {

// For the commands that compute (train, eval, bench, sweep --run/--task), in builds on the
// OpenMP backend: as above. Returns only when nothing needed setting (or execv failed).
void settle_openmp_environment(char** argv);

// "OpenMP, 2 threads per rank (OMP_PROC_BIND=false, OMP_WAIT_POLICY=passive); GEMMs: OpenBLAS
// 0.3.21 on its own 2 threads": once Kokkos runs.
std::string compute_description();

}  // namespace rewarm
