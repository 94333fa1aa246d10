// Options with a fixed set of values ([precision] gemm, [memory] recompute, ...): each an enum,
// parsed once from the config into its type and named back for the log and the resolved config.
// An enum E is such an option where option_names(E) lists its values' names in the enum's order
// (found by argument-dependent lookup beside the enum). Free of Kokkos: the config parser
// includes it.
#pragma once
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.hpp"

namespace rewarm {

template <class E, class = void>
struct is_option : std::false_type {};
template <class E>
struct is_option<E, std::void_t<decltype(option_names(E{}))>> : std::true_type {};

template <class E>
std::string option_name(E value) {
  return option_names(value)[std::size_t(value)];
}

// The value named `text`; otherwise one line naming `where` (the config file), the key, the
// value given, the values allowed and, for a typo, the one meant.
template <class E>
E parse_option(const std::string& text, const std::string& key, const std::string& where) {
  const auto& names = option_names(E{});
  const std::vector<std::string> all(std::begin(names), std::end(names));
  for (std::size_t i = 0; i < all.size(); ++i)
    if (text == all[i]) return E(i);
  fail(where, key + " = \"" + text + "\" is not one of " + join(all) + did_you_mean(text, all, "", true));
}

}  // namespace rewarm
