#include "app/memory_plan.hpp"

#include "app/device_batch.hpp"
#include "parallel/data_parallel.hpp"

namespace rewarm {

std::vector<std::pair<std::string, std::size_t>> RankMemory::parts() const {
  std::vector<std::pair<std::string, std::size_t>> all{{"weights (fp32)", model.weights},
                                                       {"weights' bf16 copy", model.weights_bf16},
                                                       {"gradients (fp32)", model.gradients},
                                                       {"gradient sum (double)", gradient_sum},
                                                       {"AdamW moments", adamw},
                                                       {"activations", model.activations},
                                                       {"backward buffers", model.backward_buffers},
                                                       {"attention workspace", model.attention},
                                                       {"cuDNN workspace", model.cudnn_workspace},
                                                       {"bf16 GEMM inputs", model.gemm_inputs},
                                                       {"gathered units", units},
                                                       {"communication buffers", communication},
                                                       {"batch", batch}};
  std::vector<std::pair<std::string, std::size_t>> out;
  for (auto& p : all)
    if (p.second) out.push_back(p);
  return out;
}

GptOptions model_options(const RunConfig& cfg, std::shared_ptr<layers::FusedAttention> fused) {
  GptOptions o;
  o.gemm = gemm_precision(cfg.precision.gemm, cfg.source);
  o.fused = std::move(fused);
  o.recompute = cfg.memory.recompute;
  o.sharded = cfg.parallel.zero == 3;
  o.attention_workspace_bytes = std::size_t(cfg.precision.attention_workspace_mb) << 20;
  if (o.attention_workspace_bytes == 0)  // auto: a GPU wants few launches, a CPU its cache
    o.attention_workspace_bytes = std::size_t(kHostMemory ? 32 : 4096) << 20;
  return o;
}

// The model's allocations (Gpt::memory_parts), the data-parallel strategy's (DataParallel::memory)
// and the batch.
RankMemory rank_memory(const RunConfig& cfg, int ranks, int rank, const GptOptions& options) {
  RankMemory m;
  const Index B = cfg.data.micro_batch, T = cfg.data.seq_len;
  m.model = Gpt<float>::memory_parts(cfg.model, B, T, options);
  const auto dp = DataParallel::memory(cfg, ranks, rank, options.gemm == GemmPrecision::bf16);
  if (dp.sharded_model) m.model.weights = dp.weights, m.model.gradients = dp.gradients;
  m.gradient_sum = dp.gradient_sum;
  m.communication = dp.communication;
  m.units = dp.units;
  m.adamw = dp.adamw;
  m.batch = DeviceBatch::memory_bytes(B, T);
  return m;
}

}  // namespace rewarm
