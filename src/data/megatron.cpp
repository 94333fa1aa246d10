#include "data/megatron.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <type_traits>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
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
  const unsigned char* data() const { return data_; }
  void advise_sequential() const {
    if (size_ > 0) ::madvise(const_cast<unsigned char*>(data_), size_, MADV_SEQUENTIAL);
  }
  // Drops the pages of bytes [begin, end) from this process (they stay in the page cache), so
  // the resident size stays bounded however large the file. `mark` remembers how far a region
  // was released already.
  void release(std::uint64_t begin, std::uint64_t end, std::uint64_t& mark) const {
    const std::uint64_t page = std::uint64_t(::sysconf(_SC_PAGESIZE));
    const std::uint64_t from = std::max(mark, (begin + page - 1) / page * page), upto = end / page * page;
    if (upto > from) ::madvise(const_cast<unsigned char*>(data_) + from, upto - from, MADV_DONTNEED);
    mark = std::max(mark, upto);
  }
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

// Appends raw tokens of type In (a run inside one sequence) to `out` as Out, checking that
// every id lies in [0, vocab). Returns the index of the first bad token, or count if none.
template <class In, class Out>
std::size_t append_run(const unsigned char* raw, std::size_t count, std::int64_t vocab, std::vector<Out>& out) {
  thread_local std::vector<In> in;
  in.resize(count);
  std::memcpy(in.data(), raw, count * sizeof(In));  // aligned and typed: the loop below vectorises
  const std::size_t base = out.size();
  out.resize(base + count);
  Out* dst = out.data() + base;
  auto bad = [vocab](In v) {
    if constexpr (std::is_signed_v<In>) {
      if (v < 0) return true;
    }
    return static_cast<std::int64_t>(v) >= vocab;
  };
  In lo = 0, hi = 0;
  for (std::size_t i = 0; i < count; ++i) {
    lo = in[i] < lo ? in[i] : lo;
    hi = in[i] > hi ? in[i] : hi;
    dst[i] = static_cast<Out>(in[i]);
  }
  if (!bad(lo) && !bad(hi)) return count;
  for (std::size_t i = 0;; ++i)  // rare: find the culprit for the error message
    if (bad(in[i])) return i;
}

template <class Out>
std::size_t append_run(int code, const unsigned char* raw, std::size_t count, std::int64_t vocab,
                       std::vector<Out>& out) {
  switch (code) {
    case 1:
      return append_run<std::uint8_t>(raw, count, vocab, out);
    case 2:
      return append_run<std::int8_t>(raw, count, vocab, out);
    case 3:
      return append_run<std::int16_t>(raw, count, vocab, out);
    case 8:
      return append_run<std::uint16_t>(raw, count, vocab, out);
    case 4:
      return append_run<std::int32_t>(raw, count, vocab, out);
    default:
      return append_run<std::int64_t>(raw, count, vocab, out);
  }
}

std::int64_t raw_token(int code, const unsigned char* p) {
  std::int64_t v = 0;
  switch (code) {
    case 1:
      return *p;
    case 2:
      return static_cast<std::int8_t>(*p);
    case 3: {
      std::int16_t x;
      std::memcpy(&x, p, 2);
      return x;
    }
    case 8: {
      std::uint16_t x;
      std::memcpy(&x, p, 2);
      return x;
    }
    case 4: {
      std::int32_t x;
      std::memcpy(&x, p, 4);
      return x;
    }
    default:
      std::memcpy(&v, p, 8);
      return v;
  }
}

// Streams the .bin tokens into /tokens (as Out) and document starts into /document_offsets,
// walking sequences and documents alongside; returns the number of tokens written. The .bin
// files are memory-mapped (no copy into user space; a token split across two files is joined
// in `carry`), and each full buffer is written by a second thread while the next is filled.
template <class Out>
Index stream_tokens(h5::File& f, const MappedFile& idx, const std::vector<std::string>& bin_paths,
                    const MegatronOptions& opt, int code, int item, std::uint64_t expected) {
  const auto N = idx.get<std::uint64_t>(18), D = idx.get<std::uint64_t>(26);
  const std::uint64_t sizes_at = 34, docs_at = 34 + 12 * N;
  h5::AppendWriter<Out> tokens(f, "/tokens", opt.chunk, opt.deflate);
  h5::AppendWriter<std::int64_t> offsets(f, "/document_offsets", 1 << 16, opt.deflate);
  std::vector<Out> out[2];
  std::vector<std::int64_t> starts[2];
  int cur = 0;
  std::int64_t base = 0;  // tokens in buffers already handed to the writer
  std::future<void> writing;
  auto hand_off = [&] {
    if (writing.valid()) writing.get();  // the writer is done with the other buffer
    writing = std::async(std::launch::async, [&tokens, &offsets, &o = out[cur], &st = starts[cur]] {
      tokens.append(o.data(), std::int64_t(o.size()));
      offsets.append(st.data(), std::int64_t(st.size()));
    });
    base += std::int64_t(out[cur].size());
    cur ^= 1;
    out[cur].clear();
    starts[cur].clear();
  };
  std::uint64_t seq = 0, doc = 1;
  std::int64_t left = N ? idx.get<std::int32_t>(sizes_at) : 0;  // tokens left in sequence `seq`
  auto close_documents = [&] {                                  // documents that end where sequence `seq` starts
    while (doc < D && std::uint64_t(idx.get<std::int64_t>(docs_at + 8 * doc)) == seq) {
      if (opt.append_eod) out[cur].push_back(Out(opt.eod_token));
      starts[cur].push_back(base + std::int64_t(out[cur].size()));  // the last one: total tokens
      ++doc;
    }
  };
  auto next_sequences = [&] {  // past every finished (or empty) sequence
    while (seq < N && left == 0) {
      ++seq;
      close_documents();
      if (seq < N) left = idx.get<std::int32_t>(sizes_at + 4 * seq);
    }
  };
  starts[cur].push_back(0);
  close_documents();  // empty documents before the first sequence
  next_sequences();
  // n tokens at p: one run per (part of a) sequence
  auto convert = [&](const unsigned char* p, std::size_t n, const std::string& file) {
    for (std::size_t i = 0; i < n;) {
      const std::size_t take = std::min<std::size_t>(std::size_t(left), n - i);
      const std::size_t ok = append_run(code, p + i * item, take, opt.vocab_size, out[cur]);
      if (ok < take)
        fail(file, "token id " + std::to_string(raw_token(code, p + (i + ok) * item)) + " in sequence " +
                       std::to_string(seq) + " is not below --vocab-size " + std::to_string(opt.vocab_size));
      i += take;
      left -= std::int64_t(take);
      next_sequences();
    }
  };
  const std::size_t block = std::size_t(1) << 22;  // tokens per buffer
  const auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  std::uint64_t consumed = 0;
  std::vector<unsigned char> carry;
  std::uint64_t sizes_released = 0, docs_released = 0;
  for (const auto& path : bin_paths) {
    MappedFile bin(path);
    bin.advise_sequential();
    std::uint64_t bin_released = 0;
    std::uint64_t at = 0;
    if (!carry.empty()) {  // the rest of a token that the previous file began
      const auto take = std::min<std::uint64_t>(std::uint64_t(item) - carry.size(), bin.size());
      carry.insert(carry.end(), bin.data(), bin.data() + take);
      at = take;
      if (carry.size() == std::size_t(item)) convert(carry.data(), 1, path), carry.clear();
    }
    while (bin.size() - at >= std::uint64_t(item)) {
      const std::size_t n = std::size_t(std::min<std::uint64_t>(block, (bin.size() - at) / item));
      convert(bin.data() + at, n, path);
      at += n * std::uint64_t(item);
      consumed += n * std::uint64_t(item);
      bin.release(0, at, bin_released);
      idx.release(sizes_at, sizes_at + 4 * seq, sizes_released);  // walked once, in order
      idx.release(docs_at, docs_at + 8 * doc, docs_released);
      if (out[cur].size() >= block) hand_off();
      const auto now = std::chrono::steady_clock::now();
      if (opt.progress && std::chrono::duration<double>(now - last).count() > 1) {
        const double s = std::chrono::duration<double>(now - t0).count();
        std::fprintf(stderr, "\rconvert megatron: %.2f / %.2f GB (%.0f%%), %.0f MB/s   ", consumed / 1e9,
                     expected / 1e9, 100.0 * double(consumed) / double(expected), consumed / 1e6 / s);
        last = now;
      }
    }
    carry.insert(carry.end(), bin.data() + at, bin.data() + bin.size());
  }
  if (!carry.empty()) fail(bin_paths.back(), "ends inside a token");
  hand_off();
  writing.get();
  if (opt.progress) std::fprintf(stderr, "\rconvert megatron: %.2f GB done%30s\n", consumed / 1e9, "");
  return tokens.size();
}

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
  std::uint64_t validated = 0;
  idx.release(0, idx.size(), validated);  // the streaming pass pages in what it needs again
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

  AtomicFile file(out);
  MegatronSummary sum;
  {
    h5::File f(file.tmp(), h5::File::Create);
    f.set_attr("format", std::string("rewarm-tokens"));
    f.set_attr("format_version", std::int64_t(1));
    f.set_attr("vocab_size", std::int64_t(opt.vocab_size));
    f.set_attr("eod_token", std::int64_t(opt.eod_token));
    f.set_attr("tokenizer", opt.tokenizer);
    f.set_attr("source", "megatron " + idx_path + (opt.append_eod ? " (EOD appended)" : ""));
    if (opt.vocab_size > 65536) {
      sum.tokens = stream_tokens<std::uint32_t>(f, idx, bin_paths, opt, code, item, expected);
    } else {
      sum.tokens = stream_tokens<std::uint16_t>(f, idx, bin_paths, opt, code, item, expected);
    }
    sum.sequences = Index(N);
    sum.documents = Index(D) - 1;
  }
  file.commit();
  return sum;
}

}  // namespace rewarm
