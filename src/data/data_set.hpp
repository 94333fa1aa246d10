// One [[data.train]] or [[data.eval]] entry of the run config.
#pragma once
#include <string>

#include "core/index.hpp"

namespace rewarm {

struct DataSet {
  std::string name, path;
  double weight = 1.0;      // train sets: share of the sample stream (normalised over the sets)
  Index max_sequences = 0;  // eval sets: first N windows (0 = all)

  // The keys of an entry of [[data.<array>]], f(key, field): a train set has a weight, an eval
  // set a length. "path" is required; "name" defaults to the array's name and the entry's index.
  template <class F>
  void for_each_field(const std::string& array, F&& f) {
    fields(*this, array, f);
  }
  template <class F>
  void for_each_field(const std::string& array, F&& f) const {
    fields(*this, array, f);
  }

 private:
  template <class Self, class F>
  static void fields(Self& d, const std::string& array, F& f) {
    f("name", d.name);
    f("path", d.path);
    if (array == "eval")
      f("max_sequences", d.max_sequences);
    else
      f("weight", d.weight);
  }
};

}  // namespace rewarm
