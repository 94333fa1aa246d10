// Learning-rate schedules: pure functions of the optimizer step t = 1, 2, ... (docs/numerics.md).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "core/index.hpp"

namespace rewarm {

// The [schedule] table; the peak and floor LRs are the optimizer's (lr, min_lr).
struct Schedule {
  std::string kind = "cosine";
  Index warmup_steps = 0, total_steps = 1;
  double const_lr = 0;      // infinite_*: LR of the constant phase
  double cooldown = 0.6;    // infinite_*: cooldown to const_lr ends at this fraction of total
  double constant = 0.85;   // infinite_*: constant phase ends here
  double timescale = 10.0;  // infinite_inv_sqrt: alpha
  double decay = 0.2;       // wsd: final fraction that decays linearly to min_lr
  // wsd: the decay's length in steps, instead of `decay`'s fraction: the cooldown of a branch
  // that continues a stable-phase checkpoint decays over its own last steps, exactly.
  std::optional<Index> decay_steps;

  static const std::vector<std::string>& kinds();
  void validate(const std::string& where) const;  // unknown kind, bad fractions
  double operator()(Index t, double lr, double min_lr) const;  // LR used by optimizer step t
};

}  // namespace rewarm
