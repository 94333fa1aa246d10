// The HF tokenizer.json that checkpoints and token shards carry (docs/formats.md): one uint8
// dataset, /tokenizer.json, holding its text, checksummed. It travels from the shards `rewarm
// tokenize` writes, or from `convert hf`'s model directory, into every checkpoint of the runs
// that use them, so that `convert to-hf` writes a directory lm-evaluation-harness takes as it is.
#pragma once
#include <functional>
#include <string>

namespace rewarm {
namespace h5 {
class File;
}

// Writes nothing for an empty text. `this_part`: whether this rank writes the bytes (one rank of
// a parallel file; the others take part in the collective call with none); `step` as in
// write_checkpoint_contents.
void write_tokenizer(h5::File& f, const std::string& json, bool this_part,
                     const std::function<void(const std::function<void()>&)>& step);
// The stored text, or "" where the file has none.
std::string read_tokenizer(const h5::File& f);
// The same from a file by its path (a token shard or a checkpoint).
std::string read_tokenizer(const std::string& path);

}  // namespace rewarm
