#include "model/recompute.hpp"

#include "core/error.hpp"

namespace rewarm {

std::string to_string(Recompute r) {
  return r == Recompute::none ? "none" : r == Recompute::selective ? "selective" : "full";
}

Recompute parse_recompute(const std::string& s, const std::string& source) {
  for (auto r : {Recompute::none, Recompute::selective, Recompute::full})
    if (s == to_string(r)) return r;
  fail(source, "memory.recompute = \"" + s + "\" is not one of none, selective, full");
}

}  // namespace rewarm
