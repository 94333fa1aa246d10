// Settings read from the environment (test hooks and site tuning, documented where they act).
#pragma once
#include <string>

namespace rewarm {

// The positive number of seconds in environment variable `name`, or `fallback` when it is unset;
// anything else fails with one line naming the variable and its value.
double env_seconds(const char* name, double fallback);

// This machine's host name (gethostname), as the run-dir lock and the logs name it.
std::string host_name();

}  // namespace rewarm
