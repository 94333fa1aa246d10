#include "data/task_file.hpp"

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/hdf5.hpp"

namespace rewarm {

void TaskFile::add(const std::vector<std::uint32_t>& context, const std::vector<std::vector<std::uint32_t>>& choices,
                   const std::vector<std::int64_t>& bytes, std::int64_t correct) {
  context_tokens.insert(context_tokens.end(), context.begin(), context.end());
  context_offsets.push_back(std::int64_t(context_tokens.size()));
  for (std::size_t c = 0; c < choices.size(); ++c) {
    choice_tokens.insert(choice_tokens.end(), choices[c].begin(), choices[c].end());
    choice_offsets.push_back(std::int64_t(choice_tokens.size()));
    choice_bytes.push_back(bytes[c]);
  }
  example_choices.push_back(example_choices.back() + std::int64_t(choices.size()));
  answer.push_back(correct);
}

void TaskFile::write(const std::string& path) const {
  AtomicFile out(path);
  {
    h5::File f(out.tmp(), h5::File::Create);
    f.set_attr("format", std::string("rewarm-task"));
    f.set_attr("format_version", std::int64_t(1));
    f.set_attr("vocab_size", std::int64_t(vocab_size));
    f.set_attr("tokenizer", tokenizer);
    f.set_attr("source", source);
    auto put = [&](const char* name, const auto& v) {
      f.write_checksummed(name, v.data(), {std::int64_t(v.size())});
    };
    put("/context_tokens", context_tokens);
    put("/context_offsets", context_offsets);
    put("/choice_tokens", choice_tokens);
    put("/choice_offsets", choice_offsets);
    put("/choice_bytes", choice_bytes);
    put("/example_choices", example_choices);
    put("/answer", answer);
    f.close();
  }
  out.commit();
}

TaskFile TaskFile::read(const std::string& path) {
  const h5::File f(path, h5::File::ReadOnly, "a rewarm task file");
  if (!f.has_attr("format") || f.attr_string("format") != "rewarm-task")
    fail(path, "not a rewarm task file (root attribute format != \"rewarm-task\"); make one with rewarm tokenize --task");
  TaskFile t;
  t.vocab_size = f.attr_int("vocab_size");
  t.tokenizer = f.has_attr("tokenizer") ? f.attr_string("tokenizer") : "";
  t.source = f.has_attr("source") ? f.attr_string("source") : "";
  t.context_tokens = f.read<std::uint32_t>("/context_tokens");
  t.context_offsets = f.read<std::int64_t>("/context_offsets");
  t.choice_tokens = f.read<std::uint32_t>("/choice_tokens");
  t.choice_offsets = f.read<std::int64_t>("/choice_offsets");
  t.choice_bytes = f.read<std::int64_t>("/choice_bytes");
  t.example_choices = f.read<std::int64_t>("/example_choices");
  t.answer = f.read<std::int64_t>("/answer");
  auto offsets_ok = [](const std::vector<std::int64_t>& o, std::size_t n, std::size_t total) {
    if (o.size() != n + 1 || o.front() != 0 || std::uint64_t(o.back()) != total) return false;
    for (std::size_t i = 0; i + 1 < o.size(); ++i)
      if (o[i + 1] < o[i]) return false;
    return true;
  };
  const std::size_t n = t.answer.size(), m = t.choice_bytes.size();
  if (!offsets_ok(t.context_offsets, n, t.context_tokens.size()) || !offsets_ok(t.example_choices, n, m) ||
      !offsets_ok(t.choice_offsets, m, t.choice_tokens.size()))
    fail(path, "inconsistent offsets: not a task file rewarm wrote");
  for (std::size_t c = 0; c < m; ++c)
    if (t.choice_offsets[c + 1] == t.choice_offsets[c]) fail(path, "choice " + std::to_string(c) + " has no token");
  for (std::size_t e = 0; e < n; ++e)
    if (t.answer[e] < 0 || t.answer[e] >= t.choices(Index(e)))
      fail(path, "example " + std::to_string(e) + ": answer " + std::to_string(t.answer[e]) + " is not one of its " +
                     std::to_string(t.choices(Index(e))) + " choices");
  return t;
}

}  // namespace rewarm
