// rewarm tokenize --task: JSON lines {"context": "...", "choices": ["...", ...], "answer": k}
// (plain or .zst) into a task file, each (context, choice) pair encoded as lm-evaluation-harness
// encodes it: whitespace that ends the context moves to the front of the choice, the pair is
// encoded whole, and the choice's tokens are what follows the context's own encoding; an empty
// context is the end-of-text token. Each choice keeps its text's UTF-8 byte length (acc_norm).
#pragma once
#include <string>

#include "data/bpe_tokenizer.hpp"
#include "data/task_file.hpp"

namespace rewarm {

// One line naming the file and line number for a line that is not such an object.
TaskFile tokenize_task(const BpeTokenizer& tok, const std::string& path, std::uint32_t eod, Index vocab_size);

}  // namespace rewarm
