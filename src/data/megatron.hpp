// GPT-NeoX/Megatron "mmap indexed datasets" (PREFIX.bin + PREFIX.idx) to a rewarm token shard.
//
// .idx: 9-byte magic "MMIDIDX\0\0", u64 version (1), u8 dtype code {1 u8, 2 i8, 3 i16, 4 i32,
// 5 i64, 6 f32, 7 f64, 8 u16}, u64 sequence count N, u64 document-index count D, int32
// sizes[N] (tokens per sequence), int64 pointers[N] (byte offset of each sequence in .bin),
// int64 doc_idx[D] (sequence index where each document starts; the last entry is N).
// .bin: the sequences' tokens back to back. Pythia's Pile ships one .idx for a .bin split into
// several files, which are read as their concatenation.
#pragma once
#include <string>
#include <vector>

#include "core/index.hpp"

namespace rewarm {

struct MegatronOptions {
  Index vocab_size = 50304;  // every token id must be below it
  Index eod_token = 0;       // GPT-NeoX-20B's <|endoftext|>
  bool append_eod = false;   // write eod_token after each document
  Index chunk = 1 << 16;     // HDF5 chunk, tokens: a shuffled 2049-token window reads 1 or 2 chunks
  int deflate = 0;           // 0 = no compression, 1..9 = gzip level
  std::string tokenizer = "unknown";
  bool progress = true;  // a progress line on stderr
};

struct MegatronSummary {
  Index sequences = 0, documents = 0, tokens = 0;
};

// Validates the index against the .bin files, then streams tokens into `out` (written as
// out.tmp and renamed). Memory stays bounded: the index is memory-mapped, tokens pass in chunks.
MegatronSummary convert_megatron(const std::string& idx_path, const std::vector<std::string>& bin_paths,
                                 const std::string& out, const MegatronOptions& opt);

}  // namespace rewarm
