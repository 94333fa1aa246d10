#include "data/megatron.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.hpp"
#include "io/checkpoint.hpp"
#include "io/hdf5.hpp"

namespace rewarm {
namespace {

// Read-only memory map of a whole file: the index of a 300B-token corpus is gigabytes, and
// the OS pages it in and out as the conversion walks it.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY);
    if (fd_ < 0) fail(path, "cannot open");
    struct stat st {};
    ::fstat(fd_, &st);
    size_ = std::uint64_t(st.st_size);
    if (size_ > 0) {
      data_ = static_cast<const unsigned char*>(::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0));
      if (data_ == MAP_FAILED) fail(path, "cannot map");
    }
  }
  ~MappedFile() {
    if (data_ && data_ != MAP_FAILED) ::munmap(const_cast<unsigned char*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  std::uint64_t size() const { return size_; }
  // Little-endian value of type V at byte offset `at` (unaligned-safe).
  template <class V>
  V get(std::uint64_t at) const {
    V v;
    std::memcpy(&v, data_ + at, sizeof(V));
    return v;
  }

 private:
  std::string path_;
  int fd_ = -1;
  const unsigned char* data_ = nullptr;
  std::uint64_t size_ = 0;
};

int dtype_size(int code) {
  switch (code) {
    case 1:
    case 2:
      return 1;
    case 3:
    case 8:
      return 2;
    case 4:
      return 4;
    case 5:
      return 8;
    default:
      return 0;  // 6 f32, 7 f64: not token ids
  }
}

// Token i of a raw buffer of dtype `code`, as a signed 64-bit value.
std::int64_t token_at(const unsigned char* p, int code, std::size_t i) {
  switch (code) {
    case 1:
      return p[i];
    case 2:
      return static_cast<std::int8_t>(p[i]);
    case 3: {
      std::int16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      return v;
    }
    case 8: {
      std::uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      return v;
    }
    case 4: {
      std::int32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      return v;
    }
    default: {
      std::int64_t v;
      std::memcpy(&v, p + 8 * i, 8);
      return v;
    }
  }
}

// Streams the concatenation of several files in buffers of a whole number of tokens.
class BinStream {
 public:
  BinStream(const std::vector<std::string>& paths, int item) : paths_(paths), item_(item) {}
  // Fills buf with up to `max_tokens` tokens; returns the count (0 at the end).
  std::size_t read(std::vector<unsigned char>& buf, std::size_t max_tokens) {
    buf.resize(max_tokens * item_);
    std::size_t got = 0;
    while (got < buf.size()) {
      if (!f_) {
        if (next_ == paths_.size()) break;
        f_.reset(std::fopen(paths_[next_].c_str(), "rb"));
        if (!f_) fail(paths_[next_], "cannot open");
        ++next_;
      }
      const std::size_t n = std::fread(buf.data() + got, 1, buf.size() - got, f_.get());
      got += n;
      if (n == 0) f_.reset();
    }
    if (got % item_ != 0) fail(paths_.back(), "ends inside a token");
    return got / item_;
  }

 private:
  struct Closer {
    void operator()(FILE* f) const { std::fclose(f); }
  };
  std::vector<std::string> paths_;
  int item_;
  std::size_t next_ = 0;
  std::unique_ptr<FILE, Closer> f_;
};

// Removes a temporary output unless released: no partial file outlives an error.
struct TempFile {
  std::string path;
  bool keep = false;
  ~TempFile() {
    if (!keep) std::remove(path.c_str());
  }
};

}  // namespace

MegatronSummary convert_megatron(const std::string& idx_path, const std::vector<std::string>& bin_paths,
                                 const std::string& out, const MegatronOptions& opt) {
  MappedFile idx(idx_path);
  static const unsigned char magic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
  if (idx.size() < 34)
    fail(idx_path, "too short for a Megatron index header (" + std::to_string(idx.size()) + " bytes)");
  for (int i = 0; i < 9; ++i)
    if (idx.get<unsigned char>(i) != magic[i]) fail(idx_path, "wrong magic: not a Megatron MMIDIDX index");
  const auto version = idx.get<std::uint64_t>(9);
  if (version != 1) fail(idx_path, "unsupported index version " + std::to_string(version) + " (expected 1)");
  const int code = idx.get<unsigned char>(17), item = dtype_size(code);
  if (item == 0)
    fail(idx_path, "unsupported dtype code " + std::to_string(code) + " (token ids need an integer dtype)");
  const auto N = idx.get<std::uint64_t>(18), D = idx.get<std::uint64_t>(26);
  const std::uint64_t sizes_at = 34, pointers_at = sizes_at + 4 * N, docs_at = pointers_at + 8 * N;
  if (N > idx.size() / 12 || D > idx.size() / 8 || docs_at + 8 * D != idx.size())
    fail(idx_path, "holds " + std::to_string(idx.size()) + " bytes, its header promises " + std::to_string(N) +
                       " sequences and " + std::to_string(D) + " document entries");
  // pointers must tile the .bin: sequence i starts where i − 1 ended
  std::uint64_t expected = 0;
  for (std::uint64_t i = 0; i < N; ++i) {
    const auto size = idx.get<std::int32_t>(sizes_at + 4 * i);
    const auto ptr = idx.get<std::int64_t>(pointers_at + 8 * i);
    if (size < 0) fail(idx_path, "sequence " + std::to_string(i) + " has negative size " + std::to_string(size));
    if (ptr < 0 || std::uint64_t(ptr) != expected)
      fail(idx_path, "pointer of sequence " + std::to_string(i) + " is " + std::to_string(ptr) + ", sizes say " +
                         std::to_string(expected));
    expected += std::uint64_t(size) * std::uint64_t(item);
  }
  if (D < 1 || idx.get<std::int64_t>(docs_at) != 0 || idx.get<std::int64_t>(docs_at + 8 * (D - 1)) != std::int64_t(N))
    fail(idx_path, "document index must start at 0 and end at the sequence count " + std::to_string(N));
  for (std::uint64_t j = 1; j < D; ++j)
    if (idx.get<std::int64_t>(docs_at + 8 * j) < idx.get<std::int64_t>(docs_at + 8 * (j - 1)))
      fail(idx_path, "document index decreases at entry " + std::to_string(j));
  std::uint64_t bin_bytes = 0;
  for (const auto& b : bin_paths) {
    std::error_code ec;
    const auto s = std::filesystem::file_size(b, ec);
    if (ec) fail(b, "cannot open");
    bin_bytes += s;
  }
  if (bin_bytes != expected)
    fail(bin_paths.back(), "the .bin data hold " + std::to_string(bin_bytes) + " bytes, " + idx_path + " describes " +
                               std::to_string(expected) + (bin_bytes < expected ? " (truncated?)" : ""));
  if (opt.append_eod && (opt.eod_token < 0 || opt.eod_token >= opt.vocab_size))
    fail(out,
         "--eod " + std::to_string(opt.eod_token) + " is not below --vocab-size " + std::to_string(opt.vocab_size));

  TempFile tmp{out + ".tmp"};
  MegatronSummary sum;
  {
    h5::File f(tmp.path, h5::File::Create);
    f.set_attr("format", std::string("rewarm-tokens"));
    f.set_attr("format_version", std::int64_t(1));
    f.set_attr("vocab_size", std::int64_t(opt.vocab_size));
    f.set_attr("eod_token", std::int64_t(opt.eod_token));
    f.set_attr("tokenizer", opt.tokenizer);
    f.set_attr("source", "megatron " + idx_path + (opt.append_eod ? " (EOD appended)" : ""));
    const bool wide = opt.vocab_size > 65536;
    std::unique_ptr<h5::AppendWriter<std::uint16_t>> w16;
    std::unique_ptr<h5::AppendWriter<std::uint32_t>> w32;
    if (wide)
      w32 = std::make_unique<h5::AppendWriter<std::uint32_t>>(f, "/tokens", opt.chunk, opt.deflate);
    else
      w16 = std::make_unique<h5::AppendWriter<std::uint16_t>>(f, "/tokens", opt.chunk, opt.deflate);
    h5::AppendWriter<std::int64_t> offsets(f, "/document_offsets", 1 << 16, opt.deflate);

    std::vector<std::uint32_t> outbuf;
    std::vector<std::int64_t> docbuf;
    Index written = 0;
    auto flush = [&] {
      if (wide) {
        w32->append(outbuf.data(), std::int64_t(outbuf.size()));
      } else {
        std::vector<std::uint16_t> t(outbuf.begin(), outbuf.end());
        w16->append(t.data(), std::int64_t(t.size()));
      }
      written += Index(outbuf.size());
      outbuf.clear();
      offsets.append(docbuf.data(), std::int64_t(docbuf.size()));
      docbuf.clear();
    };
    // Walk sequences and documents alongside the token stream.
    std::uint64_t seq = 0, doc = 1;
    std::int64_t left = N ? idx.get<std::int32_t>(sizes_at) : 0;
    auto out_pos = [&] { return std::int64_t(written + Index(outbuf.size())); };
    auto close_documents = [&] {  // documents whose end is sequence `seq`
      while (doc < D && std::uint64_t(idx.get<std::int64_t>(docs_at + 8 * doc)) == seq) {
        if (opt.append_eod) outbuf.push_back(std::uint32_t(opt.eod_token));
        docbuf.push_back(out_pos());  // start of the next document (the last: total tokens)
        ++doc;
      }
    };
    auto end_empty_sequences = [&] {  // advance past finished sequences
      while (seq < N && left == 0) {
        ++seq;
        close_documents();
        if (seq < N) left = idx.get<std::int32_t>(sizes_at + 4 * seq);
      }
    };
    docbuf.push_back(0);
    close_documents();  // empty documents before the first sequence
    end_empty_sequences();
    BinStream bins(bin_paths, item);
    std::vector<unsigned char> raw;
    const auto t0 = std::chrono::steady_clock::now();
    auto last = t0;
    std::uint64_t consumed = 0;
    for (std::size_t n; (n = bins.read(raw, std::size_t(1) << 22)) > 0;) {
      for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t t = token_at(raw.data(), code, i);
        if (t < 0 || t >= opt.vocab_size)
          fail(idx_path, "token id " + std::to_string(t) + " in sequence " + std::to_string(seq) +
                             " is not below --vocab-size " + std::to_string(opt.vocab_size));
        outbuf.push_back(std::uint32_t(t));
        --left;
        end_empty_sequences();
      }
      consumed += n * std::uint64_t(item);
      flush();
      const auto now = std::chrono::steady_clock::now();
      if (opt.progress && std::chrono::duration<double>(now - last).count() > 1) {
        const double s = std::chrono::duration<double>(now - t0).count();
        std::fprintf(stderr, "\rconvert megatron: %.2f / %.2f GB (%.0f%%), %.0f MB/s   ", consumed / 1e9,
                     expected / 1e9, 100.0 * double(consumed) / double(expected), consumed / 1e6 / s);
        last = now;
      }
    }
    flush();
    if (opt.progress) std::fprintf(stderr, "\rconvert megatron: %.2f GB done%30s\n", consumed / 1e9, "");
    sum.sequences = Index(N);
    sum.documents = Index(D) - 1;
    sum.tokens = written;
  }
  commit_file(tmp.path, out);
  tmp.keep = true;
  return sum;
}

}  // namespace rewarm
