// Where each named parameter lives in the flat buffers (parameters, gradients,
// Adam moments share one layout). Names and shapes are HF GPTNeoX's.
#pragma once
#include <string>
#include <vector>

#include "model/config.hpp"

namespace rewarm {

struct ParamEntry {
  std::string name;
  std::vector<Index> shape;
  Index offset = 0;
  Index size() const {
    Index n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
};

struct ParamLayout {
  std::vector<ParamEntry> entries;
  Index decay_end = 0;  // decayed tensors (matrices, embeddings) come first: [0, decay_end)
  Index total = 0;      // buffer length, including alignment padding

  explicit ParamLayout(const ModelConfig& c);
  const ParamEntry& at(const std::string& name) const;
  const ParamEntry* find(const std::string& name) const;
};

// Prefix of layer i's tensor names.
std::string layer_prefix(Index i);

}  // namespace rewarm
