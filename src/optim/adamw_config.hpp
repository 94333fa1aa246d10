// AdamW hyper-parameters (torch.optim.AdamW names), apart from the learning rate.
#pragma once

namespace rewarm {

struct AdamW {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, grad_clip = 1.0;
};

}  // namespace rewarm
