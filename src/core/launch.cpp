#include "core/launch.hpp"

#include <cstdlib>
#include <string>

namespace rewarm {
namespace {

// REWARM_TEAM_SIZE as a number, -1 when it is not one.
int parse_team_size() {
  const char* s = std::getenv("REWARM_TEAM_SIZE");
  if (!s || !*s) return 0;
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  return *end == '\0' && v >= 1 && v <= 1024 ? int(v) : -1;
}

}  // namespace

int team_size() {
  static const int size = parse_team_size();  // read once: every launch of a run uses the same size
  return size < 0 ? 0 : size;
}

void check_team_size() {
  const char* s = std::getenv("REWARM_TEAM_SIZE");
  if (parse_team_size() < 0)
    throw Error(std::string("REWARM_TEAM_SIZE=") + s + ": not a team size (a whole number of threads, 1 to 1024)");
  const int threads = ExecSpace().concurrency();
  if (kHostMemory && team_size() > threads)
    throw Error(std::string("REWARM_TEAM_SIZE=") + s + ": a team cannot have more threads than the " +
                std::to_string(threads) + " " + ExecSpace::name() + " runs (OMP_NUM_THREADS)");
}

}  // namespace rewarm
