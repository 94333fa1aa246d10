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

// One [[data.tasks]] entry: a multiple-choice task file (rewarm tokenize --task) scored at every
// evaluation, its first max_examples examples (0 = all).
struct TaskSet {
  std::string name, path;
  Index max_examples = 0;

  template <class F>
  void for_each_field(const std::string&, F&& f) {
    fields(*this, f);
  }
  template <class F>
  void for_each_field(const std::string&, F&& f) const {
    fields(*this, f);
  }

 private:
  template <class Self, class F>
  static void fields(Self& t, F& f) {
    f("name", t.name);
    f("path", t.path);
    f("max_examples", t.max_examples);
  }
};

}  // namespace rewarm
