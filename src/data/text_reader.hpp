// Lines of a JSON-lines file, plain or zstd-compressed (SlimPajama's .jsonl.zst), read in
// bounded memory.
#pragma once
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace rewarm {

class LineReader {
 public:
  explicit LineReader(const std::string& path);  // ".zst" suffix: zstd stream
  ~LineReader();
  // Next line without its '\n'; false at the end.
  bool next(std::string& line);
  std::size_t compressed_bytes_read() const { return read_; }  // for progress
  std::size_t file_size() const { return size_; }

 private:
  bool fill();  // more decompressed bytes into buf_; false at the end
  std::string path_;
  FILE* file_ = nullptr;
  void* zstd_ = nullptr;  // ZSTD_DStream*
  std::vector<char> in_;
  std::string buf_;
  std::size_t pos_ = 0, read_ = 0, size_ = 0;
  bool eof_ = false;
};

}  // namespace rewarm
