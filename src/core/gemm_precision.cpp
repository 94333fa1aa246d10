#include "core/gemm_precision.hpp"

#include "core/error.hpp"

namespace rewarm {

GemmPrecision parse_gemm_precision(const std::string& name, const std::string& where) {
  if (name == "fp32") return GemmPrecision::fp32;
  if (name == "bf16") return GemmPrecision::bf16;
  if (name == "tf32") return GemmPrecision::tf32;
  fail(where, "precision.gemm = \"" + name + "\" is not one of fp32, tf32, bf16");
}

std::string to_string(GemmPrecision p) {
  return p == GemmPrecision::bf16 ? "bf16" : p == GemmPrecision::tf32 ? "tf32" : "fp32";
}

}  // namespace rewarm
