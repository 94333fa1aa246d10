// AdamW hyper-parameters (torch.optim.AdamW names): the [optimizer] table. The LR of step t is
// the schedule's function of t between lr (peak) and min_lr.
#pragma once

namespace rewarm {

struct AdamW {
  double lr = 3e-4, min_lr = 3e-5;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, grad_clip = 1.0;
};

}  // namespace rewarm
