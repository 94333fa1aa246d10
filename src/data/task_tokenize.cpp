#include "data/task_tokenize.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "data/text_reader.hpp"

namespace rewarm {

TaskFile tokenize_task(const BpeTokenizer& tok, const std::string& path, std::uint32_t eod, Index vocab_size) {
  TaskFile t;
  t.vocab_size = vocab_size;
  t.tokenizer = tok.fingerprint();
  t.source = "tokenize --task " + path;
  LineReader reader(path);
  std::string line;
  for (Index number = 1; reader.next(line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto bad = [&](const std::string& why) { fail(path, "line " + std::to_string(number) + ": " + why); };
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(repair_utf8(line));
    } catch (const nlohmann::json::parse_error& e) {
      bad(std::string("malformed JSON (") + e.what() + ")");
    }
    if (!j.is_object()) bad("not a JSON object");
    if (!j.contains("context") || !j["context"].is_string()) bad("needs \"context\": a string");
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty())
      bad("needs \"choices\": a non-empty array of strings");
    if (!j.contains("answer") || !j["answer"].is_number_integer()) bad("needs \"answer\": an integer");
    const auto& choices = j["choices"];
    const auto answer = j["answer"].get<std::int64_t>();
    if (answer < 0 || answer >= std::int64_t(choices.size()))
      bad("answer " + std::to_string(answer) + " is not an index of its " + std::to_string(choices.size()) +
          " choices");
    std::string context = j["context"].get<std::string>();
    const auto kept = context.find_last_not_of(" \t\n\r\f\v");
    const std::string moved = context.substr(kept == std::string::npos ? 0 : kept + 1);  // trailing whitespace
    context.resize(context.size() - moved.size());
    const auto context_ids = context.empty() ? std::vector<std::uint32_t>{eod} : tok.encode(context);
    std::vector<std::vector<std::uint32_t>> choice_ids;
    std::vector<std::int64_t> bytes;
    for (std::size_t c = 0; c < choices.size(); ++c) {
      if (!choices[c].is_string()) bad("choice " + std::to_string(c) + " is not a string");
      const std::string& text = choices[c].get_ref<const std::string&>();
      std::vector<std::uint32_t> ids;
      if (context.empty()) {
        ids = tok.encode(moved + text);
      } else {
        const auto whole = tok.encode(context + moved + text);
        ids.assign(whole.begin() + std::ptrdiff_t(std::min(whole.size(), context_ids.size())), whole.end());
      }
      if (ids.empty()) bad("choice " + std::to_string(c) + " encodes to no token after the context");
      for (auto id : ids)
        if (Index(id) >= vocab_size) bad("token id " + std::to_string(id) + " is not below the vocabulary size");
      choice_ids.push_back(std::move(ids));
      bytes.push_back(std::int64_t(text.size()));
    }
    t.add(context_ids, choice_ids, bytes, answer);
  }
  if (t.examples() == 0) fail(path, "has no example");
  return t;
}

}  // namespace rewarm
