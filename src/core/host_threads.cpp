#include "core/host_threads.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "core/types.hpp"

namespace rewarm {
namespace {

[[maybe_unused]] std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// The BLAS behind KokkosBlas::gemm where it is OpenBLAS (asked by symbol, so that any other BLAS
// links as well): its version and threading, or "".
std::string openblas_description() {
  using Config = char* (*)();
  using Count = int (*)();
  const auto config = reinterpret_cast<Config>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  const auto threads = reinterpret_cast<Count>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  const auto parallel = reinterpret_cast<Count>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  if (!config || !threads || !parallel) return "";
  std::string version = config();  // "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"
  const auto space = version.find(' ', version.find(' ') + 1);
  if (space != std::string::npos) version.resize(space);
  const int n = threads(), kind = parallel();
  return version + (kind == 2 ? " on the OpenMP threads (" : kind == 1 ? " on its own " : " on ") +
         std::to_string(n) + (n == 1 ? " thread" : " threads") + (kind == 2 ? ")" : "");
}

// Whether the OpenMP runtime bound this thread to a place when it loaded: then the process's
// CPU mask is that one place, and a program started again from here would inherit it.
[[maybe_unused]] bool binding_asked() {
  const std::string bind = env_or("OMP_PROC_BIND", "");
  return bind.empty() ? std::getenv("OMP_PLACES") != nullptr : bind != "false" && bind != "FALSE";
}

}  // namespace

void settle_openmp_environment(char** argv) {
#if defined(KOKKOS_ENABLE_OPENMP)
  if (std::getenv("OMP_WAIT_POLICY") || binding_asked()) return;  // binding: the compute line says what to set
  setenv("OMP_WAIT_POLICY", "passive", 1);
  setenv("OMP_PROC_BIND", "false", 1);
  execv("/proc/self/exe", argv);
  std::perror("rewarm: note: could not set OMP_WAIT_POLICY=passive (execv)");  // runs on, spinning
#else
  (void)argv;
#endif
}

std::string compute_description() {
  std::string s = ExecSpace::name();
  if (!kHostMemory) return s;
  const int n = ExecSpace().concurrency();
  s += ", " + std::to_string(n) + (n == 1 ? " thread" : " threads") + " per rank";
#if defined(KOKKOS_ENABLE_OPENMP)
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  s += " (OMP_PROC_BIND=" + env_or("OMP_PROC_BIND", "unset") + ", OMP_PLACES=" + env_or("OMP_PLACES", "unset") +
       (wait ? std::string(", OMP_WAIT_POLICY=") + wait : std::string(", OMP_WAIT_POLICY unset: export OMP_WAIT_POLICY=passive")) +
       ")";
#endif
  const std::string blas = openblas_description();
  return blas.empty() ? s : s + "; GEMMs: " + blas;
}

}  // namespace rewarm
