#pragma once
#include <array>
#include <string>

#include "core/option.hpp"

namespace rewarm {

// Activation recomputation ([memory] recompute): what the forward pass keeps for the backward
// pass. none: every layer's activations. selective: the GEMM outputs and the statistics; the
// LayerNorm outputs and the GELU activation are recomputed in the backward pass (one set for all
// layers). full: only each layer's input; the layer's forward pass is recomputed in its
// backward pass (one layer's activations; GPT-NeoX's checkpoint_activations, one layer per
// checkpoint). The recomputed values are bitwise the stored ones: every mode gives the same
// gradients.
enum class Recompute { none, selective, full };
inline const std::array<const char*, 3>& option_names(Recompute) {
  static const std::array<const char*, 3> names{"none", "selective", "full"};
  return names;
}
std::string to_string(Recompute r);
// "none" | "selective" | "full"; anything else: one line naming `source` and the key.
Recompute parse_recompute(const std::string& s, const std::string& source);

}  // namespace rewarm
