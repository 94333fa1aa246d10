// One [[data.train]] or [[data.eval]] entry of the run config.
#pragma once
#include <string>

#include "core/index.hpp"

namespace rewarm {

struct DataSet {
  std::string name, path;
  double weight = 1.0;      // train sets: share of the sample stream (normalised over the sets)
  Index max_sequences = 0;  // eval sets: first N windows (0 = all)
};

}  // namespace rewarm
