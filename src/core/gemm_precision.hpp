// The precision a run's GEMMs compute in ([precision] gemm). Free of Kokkos, so the config
// parser (compiled by the host compiler alone in CUDA builds) can check the name.
#pragma once
#include <array>
#include <string>

#include "core/option.hpp"

namespace rewarm {

enum class GemmPrecision { fp32, tf32, bf16 };
inline const std::array<const char*, 3>& option_names(GemmPrecision) {
  static const std::array<const char*, 3> names{"fp32", "tf32", "bf16"};
  return names;
}
// "fp32" | "tf32" | "bf16"; fails naming `where` otherwise (a config names any, whatever the build;
// gemm_precision() in core/gemm.hpp also checks this build can compute in it).
GemmPrecision parse_gemm_precision(const std::string& name, const std::string& where);
std::string to_string(GemmPrecision p);

}  // namespace rewarm
