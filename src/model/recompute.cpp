#include "model/recompute.hpp"

namespace rewarm {

std::string to_string(Recompute r) { return option_name(r); }

Recompute parse_recompute(const std::string& s, const std::string& source) {
  return parse_option<Recompute>(s, "memory.recompute", source);
}

}  // namespace rewarm
