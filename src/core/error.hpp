// One error type: its message is the one line the user sees.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace rewarm {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An error every rank of the job raises together (agreed through the communicator): rank 0
// reports it once and every rank exits cleanly.
struct CollectiveError : Error {
  using Error::Error;
};

// "FILE: what is wrong"
[[noreturn]] void fail(const std::string& where, const std::string& what);

// " (did you mean X?)" for an unknown name, X the closest candidate, written prefix + candidate
// (in double quotes when `quoted`); "" if no candidate is close enough to be a typo.
std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates,
                         const std::string& prefix = "", bool quoted = false);

// "a, b, c" for messages: the items with `separator` between them.
std::string join(const std::vector<std::string>& items, const std::string& separator = ", ");

}  // namespace rewarm
