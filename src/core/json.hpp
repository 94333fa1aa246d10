// JSON in: parse or fail with one line naming the file (HF config.json, safetensors headers,
// tokenizer.json, checkpoint attributes).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace rewarm {

// Parses `text`; on a syntax error fails as "where: what".
nlohmann::json parse_json(const std::string& text, const std::string& where, const std::string& what = "not valid JSON");
// Reads and parses the whole file at `path` ("cannot open", "not valid JSON"); `text`, if
// given, receives the file's bytes.
nlohmann::json read_json_file(const std::string& path, std::string* text = nullptr);

}  // namespace rewarm
