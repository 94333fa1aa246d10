#include "core/env.hpp"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "core/error.hpp"

namespace rewarm {

double env_seconds(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(s > 0)) fail(std::string(name) + "=" + v, "must be a positive number of seconds");
  return s;
}

std::string host_name() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace rewarm
