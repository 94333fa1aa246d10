#include "model/attention_choice.hpp"

#include "core/error.hpp"

namespace rewarm {

AttentionChoice choose_attention(
    AttentionRequest requested, GemmPrecision gemm, const layers::AttentionShape& shape, const std::string& source,
    const layers::FusedAttentionSupport& support,
    const std::function<std::shared_ptr<layers::FusedAttention>(const layers::AttentionShape&)>& build) {
  if (requested == AttentionRequest::gemm) return {nullptr, "precision.attention = \"gemm\""};
  std::string why;
  if (gemm != GemmPrecision::bf16) {
    why = "precision.gemm = \"" + to_string(gemm) + "\", and cuDNN's fused attention computes in bf16";
  } else if (!support.why_not.empty()) {
    why = support.why_not;
  } else {
    try {  // cuDNN decides here whether it has kernels for this shape (head size, sequence length)
      return {build(shape), support.library};
    } catch (const Error& e) {
      why = "cuDNN cannot run head size " + std::to_string(shape.hd) + ", seq_len " + std::to_string(shape.seq) +
            ": " + e.what();
    }
  }
  if (requested == AttentionRequest::fused) fail(source, "precision.attention = \"fused\" cannot run here: " + why);
  return {nullptr, "auto: " + why};
}

AttentionChoice choose_attention(AttentionRequest requested, GemmPrecision gemm, const layers::AttentionShape& shape,
                                 const std::string& source) {
  const bool wanted = requested != AttentionRequest::gemm && gemm == GemmPrecision::bf16;  // probe cuDNN only if it could run
  return choose_attention(requested, gemm, shape, source,
                          wanted ? layers::fused_attention_support() : layers::FusedAttentionSupport{},
                          [](const layers::AttentionShape& s) { return std::make_shared<layers::FusedAttention>(s); });
}

}  // namespace rewarm
