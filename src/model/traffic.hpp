// The bytes one micro-batch moves through device memory, estimated from how Gpt computes it:
// every kernel and GEMM reads its operands once and writes its results once (re-reads that
// caches absorb are not counted, nor the tiles a GEMM or cuDNN re-reads from L2: a lower bound
// on DRAM traffic). With bf16 GEMMs an fp32 operand that Gemm converts costs its read, the bf16
// copy's write and read; bf16 values count 2 bytes, as GPU builds store them. `rewarm bench` reports it beside the FLOPs: a step whose bytes at the
// device's bandwidth take about as long as its FLOPs at the GEMM rate is bound by memory.
#pragma once
#include "model/gpt.hpp"

namespace rewarm {

struct Traffic {
  double forward = 0, backward = 0;  // the whole model, one micro-batch
  double attention = 0;              // of which the attention's (both passes, all layers)
  double total() const { return forward + backward; }
};

Traffic estimate_traffic(const ModelConfig& c, Index batch, Index seq_len, const GptOptions& options);

}  // namespace rewarm
