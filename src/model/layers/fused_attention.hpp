// Fused causal attention: cuDNN's scaled-dot-product attention (a flash-attention kernel: the
// T×T scores never leave the chip), forward and backward, in bf16 with fp32 softmax statistics.
// It reads Q, K and V in place from the bf16 qkv rows [N, 3d] (per head [q|k|v], after rotary)
// and writes O as the rows [N, d] the dense projection reads, through strides: no head-major
// copies. The softmax's log-sum-exp per (batch, head, token) is saved for the backward pass,
// which writes dQ, dK, dV into bf16 rows [N, 3d] again.
//
// The object is the plan cache of one shape: its constructor builds both execution plans once
// (cuDNN picks the kernels there), every call reuses them. cuDNN itself is not linked: the first
// use loads libcudnn_graph.so.9 from the library path (on clusters the cuDNN module; on the GPU
// machine PyTorch's nvidia-cudnn-cu13 package), so a build runs where cuDNN is missing, with the
// GEMM attention.
#pragma once
#include <memory>
#include <string>

#include "model/layers/attention.hpp"

namespace rewarm::layers {

// Why the fused attention cannot run in this process (empty: it can), and which cuDNN it found.
struct FusedAttentionSupport {
  std::string why_not;
  std::string library;  // e.g. "cuDNN 9.19.0 (/path/libcudnn_graph.so.9)"
};
// Checks the build, the cuDNN on the library path (≥ 9.10.2) and the device (sm_80 or newer).
FusedAttentionSupport fused_attention_support();
inline constexpr std::size_t kMinCudnnVersion = 91002;  // 9.10.0 and 9.10.1 compute bf16 backward wrongly

class FusedAttention {
 public:
  // Builds the plans for this shape; throws Error saying why where cuDNN cannot run it.
  explicit FusedAttention(AttentionShape shape);
  // The host twin, for tests of everything around the kernel: the same calls and storage (bf16
  // qkv, O and dO; fp32 statistics; the workspace) over the GEMM attention computing in bf16.
  // Only in builds whose bf16 storage is float (host builds); throws Error elsewhere.
  static std::shared_ptr<FusedAttention> host_emulation(AttentionShape shape);
  ~FusedAttention();
  FusedAttention(const FusedAttention&) = delete;
  FusedAttention& operator=(const FusedAttention&) = delete;

  const AttentionShape& shape() const;
  std::size_t workspace_bytes() const;  // the scratch each call needs: the model allocates it

  // qkv [N, 3d], out [N, d], dout [N, d], dqkv [N, 3d] in bf16; lse [B·H·T] in fp32; workspace
  // of workspace_bytes(). Asynchronous, on the Kokkos stream.
  void forward(const Bf16Storage* qkv, Bf16Storage* out, float* lse, void* workspace) const;
  void backward(const Bf16Storage* qkv, const Bf16Storage* out, const Bf16Storage* dout, const float* lse,
                Bf16Storage* dqkv, void* workspace) const;

 private:
  struct Impl;
  explicit FusedAttention(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The bf16 copies around the fused attention, one element per thread: dst = src rounded to bf16
// (to_bf16_storage), and back.
inline void store_bf16(const View1<Bf16Storage>& dst, const float* src) {
  Kokkos::parallel_for(
      "rewarm::store_bf16", Range(0, dst.extent(0)), KOKKOS_LAMBDA(Index i) { dst(i) = to_bf16_storage(src[i]); });
}
inline void load_bf16(float* dst, const View1<Bf16Storage>& src) {
  Kokkos::parallel_for(
      "rewarm::load_bf16", Range(0, src.extent(0)), KOKKOS_LAMBDA(Index i) { dst[i] = from_bf16_storage(src(i)); });
}

}  // namespace rewarm::layers
