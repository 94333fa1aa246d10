// What one rank allocates to train a run, by part: the model's (Gpt::memory_parts) and the
// trainer's (the gradient sum, the AdamW moments, the batch). The trainer checks it against the
// device's free memory before allocating anything, `rewarm plan` prints it, and a test holds it
// to the allocations (Kokkos' high-water mark) of small runs.
#pragma once
#include <string>
#include <vector>

#include "app/run_config.hpp"
#include "model/gpt.hpp"

namespace rewarm {

struct RankMemory {
  GptMemory model;
  std::size_t gradient_sum = 0;   // double: the step's whole sum (zero <= 1) or this rank's slice of it
  std::size_t communication = 0;  // ZeRO-1's reduce-scatter target, ZeRO-2's range on its way
  std::size_t units = 0;          // ZeRO-3: two units' gathered parameters (and bf16 copies), one unit's gradients
  std::size_t adamw = 0;          // both moments of the part this rank updates
  std::size_t batch = 0;          // token ids and targets
  std::size_t total() const { return model.total() + gradient_sum + communication + units + adamw + batch; }
  // (name, bytes) in the order `rewarm plan` prints them; parts of 0 bytes left out.
  std::vector<std::pair<std::string, std::size_t>> parts() const;
};

// How the model computes for `cfg` (precision, recompute, attention workspace); `fused`: the
// fused attention's plans, or null for the GEMM attention.
GptOptions model_options(const RunConfig& cfg, std::shared_ptr<layers::FusedAttention> fused);
// Rank `rank` of `ranks` training `cfg` with those options.
RankMemory rank_memory(const RunConfig& cfg, int ranks, int rank, const GptOptions& options);

}  // namespace rewarm
