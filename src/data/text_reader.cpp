#include "data/text_reader.hpp"

#include <zstd.h>

#include <filesystem>

#include "core/error.hpp"

namespace rewarm {

LineReader::LineReader(const std::string& path) : path_(path), in_(1 << 20) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) fail(path, "cannot open");
  std::error_code ec;
  size_ = std::filesystem::file_size(path, ec);
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".zst") == 0) {
    zstd_ = ZSTD_createDStream();
    ZSTD_initDStream(static_cast<ZSTD_DStream*>(zstd_));
  }
}

LineReader::~LineReader() {
  if (zstd_) ZSTD_freeDStream(static_cast<ZSTD_DStream*>(zstd_));
  if (file_) std::fclose(file_);
}

bool LineReader::fill() {
  if (eof_) return false;
  buf_.erase(0, pos_);
  pos_ = 0;
  const std::size_t n = std::fread(in_.data(), 1, in_.size(), file_);
  read_ += n;
  if (n == 0) {
    eof_ = true;
    return false;
  }
  if (!zstd_) {
    buf_.append(in_.data(), n);
    return true;
  }
  ZSTD_inBuffer in{in_.data(), n, 0};
  std::vector<char> out(ZSTD_DStreamOutSize());
  while (in.pos < in.size) {
    ZSTD_outBuffer o{out.data(), out.size(), 0};
    const std::size_t r = ZSTD_decompressStream(static_cast<ZSTD_DStream*>(zstd_), &o, &in);
    if (ZSTD_isError(r)) fail(path_, std::string("not a valid zstd stream: ") + ZSTD_getErrorName(r));
    buf_.append(out.data(), o.pos);
  }
  return true;
}

bool LineReader::next(std::string& line) {
  for (;;) {
    const auto nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      line.assign(buf_, pos_, nl - pos_);
      pos_ = nl + 1;
      return true;
    }
    if (!fill()) {
      if (pos_ >= buf_.size()) return false;
      line.assign(buf_, pos_, std::string::npos);  // last line without '\n'
      pos_ = buf_.size();
      return true;
    }
  }
}

}  // namespace rewarm
