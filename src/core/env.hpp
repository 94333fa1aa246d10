// Settings read from the environment (test hooks and site tuning, documented where they act).
#pragma once

namespace rewarm {

// The positive number of seconds in environment variable `name`, or `fallback` when it is unset;
// anything else fails with one line naming the variable and its value.
double env_seconds(const char* name, double fallback);

}  // namespace rewarm
