#include "core/gemm_precision.hpp"

namespace rewarm {

GemmPrecision parse_gemm_precision(const std::string& name, const std::string& where) {
  return parse_option<GemmPrecision>(name, "precision.gemm", where);
}

std::string to_string(GemmPrecision p) { return option_name(p); }

}  // namespace rewarm
