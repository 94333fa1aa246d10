#include "core/error.hpp"

#include <algorithm>
#include <vector>

namespace rewarm {

void fail(const std::string& where, const std::string& what) { throw Error(where + ": " + what); }

// Edits (insert, delete, substitute, swap two neighbours) from a to b: "lsit" is one from "list".
static std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates,
                         const std::string& prefix, bool quoted) {
  std::string best;
  std::size_t best_d = name.size() / 2 + 2, best_prefix = 0;  // farther than best_d is not a typo
  auto common_prefix = [&](const std::string& c) {
    std::size_t n = 0;
    while (n < c.size() && n < name.size() && c[n] == name[n]) ++n;
    return n;
  };
  for (const auto& c : candidates) {  // the closest; of equally close ones, the longest shared start
    const std::size_t d = edit_distance(name, c), p = common_prefix(c);
    if (d < best_d || (d == best_d && !best.empty() && p > best_prefix)) best_d = d, best = c, best_prefix = p;
  }
  if (best.empty()) return "";
  const std::string q = quoted ? "\"" : "";
  return " (did you mean " + q + prefix + best + q + "?)";
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

}  // namespace rewarm
