// AdamW hyper-parameters (torch.optim.AdamW names): the [optimizer] table. The LR of step t is
// the schedule's function of t between lr (peak) and min_lr.
#pragma once
#include "core/index.hpp"

namespace rewarm {

struct AdamW {
  double lr = 3e-4, min_lr = 3e-5;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, grad_clip = 1.0;
  // Steps at LR 0 before the schedule's step 0: they fill the moments of a run whose checkpoint
  // carries none (a released model) and leave the weights bit for bit as they were.
  Index moment_warmup_steps = 0;
};

}  // namespace rewarm
