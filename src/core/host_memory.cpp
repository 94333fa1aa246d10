#include "core/host_memory.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace rewarm {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return in ? s.str() : "";
}

// "Key: 123 kB" of /proc/meminfo, in bytes; 0 if absent.
std::size_t meminfo(const std::string& text, const std::string& key) {
  const auto at = text.find(key + ":");
  if (at == std::string::npos) return 0;
  return std::size_t(std::strtoull(text.c_str() + at + key.size() + 1, nullptr, 10)) * 1024;
}

// A number file of a cgroup ("max" and v1's huge "unlimited" values read as no limit: 0).
std::size_t number(const std::string& path) {
  const std::string s = read_text(path);
  if (s.empty() || s.compare(0, 3, "max") == 0) return 0;
  const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  return v >= (1ull << 60) ? 0 : std::size_t(v);
}

// "key value" of a cgroup's memory.stat; 0 if absent.
std::size_t stat_value(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  unsigned long long v = 0;
  while (in >> k >> v)
    if (k == key) return std::size_t(v);
  return 0;
}

struct Limit {
  std::size_t limit = 0, available = 0;  // limit 0: none
  std::string cgroup;
};

// The tightest memory limit on the way from this process's cgroup up to the root.
Limit cgroup_limit(const std::string& root) {
  std::istringstream lines(read_text(root + "/proc/self/cgroup"));
  std::string line;
  Limit best;
  while (std::getline(lines, line)) {  // v2: "0::/path"; v1: "N:memory,...:/path"
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    const bool v2 = controllers.empty(), v1 = ("," + controllers + ",").find(",memory,") != std::string::npos;
    if (!v2 && !v1) continue;
    const std::string base = root + (v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory");
    for (std::string p = path;; p = p.substr(0, p.rfind('/'))) {
      const std::string dir = base + (p == "/" ? "" : p);
      const std::size_t limit = number(dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes"));
      if (limit > 0) {
        const std::size_t used = number(dir + (v2 ? "/memory.current" : "/memory.usage_in_bytes"));
        // page cache that the kernel reclaims before it refuses memory
        const std::size_t cache = stat_value(read_text(dir + "/memory.stat"), v2 ? "inactive_file" : "total_inactive_file");
        const std::size_t in_use = used > cache ? used - cache : 0;
        const std::size_t available = limit > in_use ? limit - in_use : 0;
        if (best.limit == 0 || available < best.available) best = {limit, available, p.empty() ? "/" : p};
      }
      if (p.empty() || p == "/") break;
    }
  }
  return best;
}

}  // namespace

HostMemory host_memory(const std::string& root) {
  const std::string info = read_text(root + "/proc/meminfo");
  HostMemory m{meminfo(info, "MemAvailable"), meminfo(info, "MemTotal"), "MemAvailable"};
  const Limit c = cgroup_limit(root);
  if (c.limit > 0 && (m.total == 0 || c.available < m.available))
    m = {c.available, c.limit, "the cgroup limit of " + c.cgroup};
  return m;
}

}  // namespace rewarm
