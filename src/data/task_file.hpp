// Multiple-choice task files (docs/formats.md, format = "rewarm-task"): the form HellaSwag,
// PIQA, ARC, SciQ and LAMBADA (one choice: the target) reduce to, as token ids. Example e has a
// context and choices; a choice is scored by the log-likelihood of its tokens after the context.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/index.hpp"

namespace rewarm {

struct TaskFile {
  // Example e: context tokens [context_offsets[e], context_offsets[e+1]); choices
  // [example_choices[e], example_choices[e+1]); choice c: tokens [choice_offsets[c],
  // choice_offsets[c+1]) and the UTF-8 byte length of its text, choice_bytes[c].
  std::vector<std::uint32_t> context_tokens, choice_tokens;
  std::vector<std::int64_t> context_offsets{0}, choice_offsets{0}, example_choices{0}, choice_bytes, answer;
  Index vocab_size = 0;
  std::string tokenizer, source;

  Index examples() const { return Index(answer.size()); }
  Index choices(Index e) const { return example_choices[std::size_t(e + 1)] - example_choices[std::size_t(e)]; }
  void add(const std::vector<std::uint32_t>& context, const std::vector<std::vector<std::uint32_t>>& choices,
           const std::vector<std::int64_t>& bytes, std::int64_t correct);

  // Written atomically (NAME.tmp, then renamed).
  void write(const std::string& path) const;
  // Reads and checks it (offsets ascending and in range, an answer per example among its choices,
  // every choice with a token): one line naming the file otherwise.
  static TaskFile read(const std::string& path);
};

}  // namespace rewarm
