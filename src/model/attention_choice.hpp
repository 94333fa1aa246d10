// Which attention a run computes with ([precision] attention = "auto" | "fused" | "gemm"),
// decided once, before the model is allocated (the fused attention's workspace is part of the
// memory estimate).
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "core/gemm_precision.hpp"
#include "model/attention_request.hpp"
#include "model/layers/fused_attention.hpp"

namespace rewarm {

struct AttentionChoice {
  std::shared_ptr<layers::FusedAttention> fused;  // its plans; null: the GEMM attention
  std::string why;                                // what runs and why, for the log
  std::string name() const { return fused ? "fused" : "gemm"; }
  std::string line() const { return name() + " (" + why + ")"; }
};

// "fused" where it cannot run fails naming `source` and the key; "auto" then takes the GEMM
// attention and says why. `support` and `build` are the process's own by default (tests pass
// their own).
AttentionChoice choose_attention(
    AttentionRequest requested, GemmPrecision gemm, const layers::AttentionShape& shape, const std::string& source,
    const layers::FusedAttentionSupport& support,
    const std::function<std::shared_ptr<layers::FusedAttention>(const layers::AttentionShape&)>& build);
AttentionChoice choose_attention(AttentionRequest requested, GemmPrecision gemm, const layers::AttentionShape& shape,
                                 const std::string& source);

}  // namespace rewarm
