#include "core/json.hpp"

#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace rewarm {

nlohmann::json parse_json(const std::string& text, const std::string& where, const std::string& what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    fail(where, what);
  }
}

nlohmann::json read_json_file(const std::string& path, std::string* text) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  if (text) *text = ss.str();
  return parse_json(ss.str(), path);
}

}  // namespace rewarm
