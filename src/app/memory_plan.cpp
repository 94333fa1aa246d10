#include "app/memory_plan.hpp"

#include "parallel/comm.hpp"
#include "parallel/param_units.hpp"
#include "parallel/sliced_gradients.hpp"

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
  o.recompute = parse_recompute(cfg.memory.recompute, cfg.source);
  o.sharded = cfg.parallel.zero == 3;
  o.attention_workspace_bytes = std::size_t(cfg.precision.attention_workspace_mb) << 20;
  if (o.attention_workspace_bytes == 0)  // auto: a GPU wants few launches, a CPU its cache
    o.attention_workspace_bytes = std::size_t(kHostMemory ? 32 : 4096) << 20;
  return o;
}

// Mirrors the trainer's allocations (Trainer::Trainer, SlicedGradientSum, ParamUnits).
RankMemory rank_memory(const RunConfig& cfg, int ranks, int rank, const GptOptions& options) {
  RankMemory m;
  const Index B = cfg.data.micro_batch, T = cfg.data.seq_len, P = ParamLayout(cfg.model).total;
  m.model = Gpt<float>::memory_parts(cfg.model, B, T, options);
  const int zero = int(cfg.parallel.zero);
  const Slices slices(P, zero ? ranks : 1);
  const Index own = slices.count[std::size_t(zero ? rank : 0)];
  const bool direct = cfg.data.global_batch == B && ranks == 1;
  const bool fp32 = cfg.parallel.reduce == "fp32" && ranks > 1;
  if (zero == 3) {  // this rank's parameters and gradient (its slices), the gathered units
    const bool bf16 = options.gemm == GemmPrecision::bf16;
    m.model.weights = allocation_bytes(own, 4), m.model.gradients = allocation_bytes(own, 4);
    m.units = ParamUnits::memory_bytes(ParamLayout(cfg.model), slices, rank, bf16) - m.model.weights;
  }
  if (zero == 3 || (zero >= 2 && !direct)) {
    m.gradient_sum = allocation_bytes(own, 8);
    m.communication =
        SlicedGradientSum::memory_bytes(slices, rank, ParamLayout(cfg.model).largest_bucket_range()) - m.gradient_sum;
  } else if (!direct) {
    m.gradient_sum = allocation_bytes(P, 8);
  }
  if (zero == 1) m.communication = allocation_bytes(own, fp32 ? 4 : 8);
  m.adamw = 2 * allocation_bytes(own, 4);
  m.batch = 2 * allocation_bytes(B * T, 4);
  return m;
}

}  // namespace rewarm
