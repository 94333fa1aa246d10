// [precision] attention: the attention a run asks for ("auto", "fused": cuDNN's, in bf16, or
// "gemm"); model/attention_choice decides what runs. Free of Kokkos: the config parser includes it.
#pragma once
#include <array>

#include "core/option.hpp"

namespace rewarm {

enum class AttentionRequest { automatic, fused, gemm };
inline const std::array<const char*, 3>& option_names(AttentionRequest) {
  static const std::array<const char*, 3> names{"auto", "fused", "gemm"};
  return names;
}

}  // namespace rewarm
