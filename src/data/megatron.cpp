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
#include <memory>
#include <optional>
#include <type_traits>

#include "core/error.hpp"
#include "data/token_shard.hpp"
#include "io/atomic_file.hpp"
#include "io/background_writer.hpp"
#include "io/hdf5.hpp"
#include "io/streaming_io.hpp"

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

// Index of the first id in in[0, count) outside [0, vocab), or count if there is none.
template <class In>
std::size_t first_bad(const In* in, std::size_t count, std::int64_t vocab) {
  auto bad = [vocab](In v) {
    if constexpr (std::is_signed_v<In>) {
      if (v < 0) return true;
    }
    return static_cast<std::int64_t>(v) >= vocab;
  };
  In lo = 0, hi = 0;
  for (std::size_t i = 0; i < count; ++i) {  // branch-free: vectorises
    lo = in[i] < lo ? in[i] : lo;
    hi = in[i] > hi ? in[i] : hi;
  }
  if (!bad(lo) && !bad(hi)) return count;
  for (std::size_t i = 0;; ++i)  // rare: find the culprit for the error message
    if (bad(in[i])) return i;
}

// std::allocator whose resize() leaves new elements uninitialised: a buffer about to be
// overwritten by a read need not be zeroed first.
template <class T>
struct UninitializedAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <class U>
  UninitializedAllocator(const UninitializedAllocator<U>&) {}
  template <class U>
  void construct(U* p) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// Streams the .bin tokens (type In) into /tokens (as Out) and document starts into
// /document_offsets, walking sequences and documents alongside; returns the number of tokens
// written. The .bin files are read in blocks as one stream (a token split across two files is
// joined in `carry`); each full output buffer is written by a second thread while the next
// ones are filled.
template <class In, class Out>
Index stream_tokens(h5::File& f, const MappedFile& idx, const std::vector<std::string>& bin_paths,
                    const MegatronOptions& opt, std::uint64_t expected) {
  constexpr std::uint64_t item = sizeof(In);
  const auto N = idx.get<std::uint64_t>(18), D = idx.get<std::uint64_t>(26);
  const std::uint64_t sizes_at = 34, docs_at = 34 + 12 * N;
  // Uncompressed tokens go straight into chunks allocated up front; compressed ones through
  // HDF5's filters.
  const auto total = std::int64_t(expected / item) + (opt.append_eod ? std::int64_t(D) - 1 : 0);
  std::optional<h5::DirectWriter<Out>> direct;
  std::optional<h5::AppendWriter<Out>> appended;
  if (opt.deflate == 0 && total > 0) {
    direct.emplace(f, "/tokens", total, opt.chunk);
  } else {
    appended.emplace(f, "/tokens", opt.chunk, opt.deflate);
  }
  h5::AppendWriter<std::int64_t> offsets(f, "/document_offsets", 1 << 16, opt.deflate);
  std::int64_t written = 0;
  struct Block {
    std::vector<Out, UninitializedAllocator<Out>> tokens;
    std::vector<std::int64_t> starts;  // of documents, in tokens from the start of /tokens
    void clear() { tokens.clear(), starts.clear(); }
  };
  BackgroundWriter<Block> writer(
      [&](Block& b) {
        const auto n = std::int64_t(b.tokens.size());
        if (direct) {
          direct->write(written, b.tokens.data(), n);
        } else {
          appended->append(b.tokens.data(), n);
        }
        written += n;
        offsets.append(b.starts.data(), std::int64_t(b.starts.size()));
      },
      3);
  std::int64_t emitted = 0;  // tokens put into blocks so far
  std::uint64_t seq = 0, doc = 1;
  std::int64_t left = N ? idx.get<std::int32_t>(sizes_at) : 0;  // tokens left in sequence `seq`
  auto close_documents = [&] {                                  // documents that end where sequence `seq` starts
    while (doc < D && std::uint64_t(idx.get<std::int64_t>(docs_at + 8 * doc)) == seq) {
      Block& b = writer.current();
      if (opt.append_eod) b.tokens.push_back(Out(opt.eod_token)), ++emitted;
      b.starts.push_back(emitted);  // the last one: total tokens
      ++doc;
    }
  };
  // Past the next n tokens of the .bin, closing the sequences and documents that end there.
  auto advance = [&](std::int64_t n) {
    for (;;) {
      const std::int64_t take = std::min(n, left);
      left -= take;
      emitted += take;
      n -= take;
      while (seq < N && left == 0) {
        ++seq;
        close_documents();
        if (seq < N) left = idx.get<std::int32_t>(sizes_at + 4 * seq);
      }
      if (n == 0 || seq == N) return;
    }
  };
  writer.current().starts.push_back(0);
  close_documents();  // empty documents before the first sequence
  advance(0);
  auto bad_token = [&](std::int64_t id, const std::string& file) {
    fail(file, "token id " + std::to_string(id) + " in sequence " + std::to_string(seq) + " is not below --vocab-size " +
                   std::to_string(opt.vocab_size));
  };
  // Copies n tokens at p into the current block as Out, one run per (part of a) sequence, so
  // that EODs go between documents.
  auto convert = [&](const In* p, std::size_t n, const std::string& file) {
    for (std::size_t i = 0; i < n;) {
      const std::size_t take = std::min<std::size_t>(std::size_t(left), n - i);
      const std::size_t ok = first_bad(p + i, take, opt.vocab_size);
      if (ok < take) advance(std::int64_t(ok)), bad_token(std::int64_t(p[i + ok]), file);
      auto& out = writer.current().tokens;
      const std::size_t old = out.size();
      out.resize(old + take);
      std::copy(p + i, p + i + take, out.data() + old);  // converts to Out
      i += take;
      advance(std::int64_t(take));
    }
  };
  // Tokens of the .bin are the output's bytes when the types agree and no EOD goes between
  // documents: read them straight into the block, check them there.
  const bool read_in_place = std::is_same_v<In, Out> && !opt.append_eod;
  const std::size_t block = std::size_t(1) << 22;  // tokens per buffer
  std::vector<In> in(read_in_place ? 0 : block);
  const auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  std::uint64_t consumed = 0;
  unsigned char carry[item];  // the first bytes of a token that continues in the next file
  std::uint64_t carried = 0;
  std::uint64_t sizes_released = 0, docs_released = 0;
  for (const auto& path : bin_paths) {
    SequentialReader bin(path);
    std::uint64_t at = 0;
    if (carried > 0) {
      at = std::min(item - carried, bin.size());
      bin.read(0, at, carry + carried);
      carried += at;
      if (carried == item) {
        In v;
        std::memcpy(&v, carry, item);
        convert(&v, 1, path);
        carried = 0;
      }
    }
    while (bin.size() - at >= item) {
      const std::size_t n = std::size_t(std::min<std::uint64_t>(block, (bin.size() - at) / item));
      if (read_in_place) {
        auto& out = writer.current().tokens;
        const std::size_t old = out.size();
        out.resize(old + n);
        bin.read(at, n * item, out.data() + old);
        const std::size_t ok = first_bad(out.data() + old, n, opt.vocab_size);
        if (ok < n) advance(std::int64_t(ok)), bad_token(std::int64_t(out[old + ok]), path);
        advance(std::int64_t(n));
      } else {
        bin.read(at, n * item, in.data());
        convert(in.data(), n, path);
      }
      at += n * item;
      consumed += n * item;
      idx.release(sizes_at, sizes_at + 4 * seq, sizes_released);  // walked once, in order
      idx.release(docs_at, docs_at + 8 * doc, docs_released);
      if (writer.current().tokens.size() >= block) writer.hand_off();
      const auto now = std::chrono::steady_clock::now();
      if (opt.progress && std::chrono::duration<double>(now - last).count() > 1) {
        const double s = std::chrono::duration<double>(now - t0).count();
        std::fprintf(stderr, "\rconvert megatron: %.2f / %.2f GB (%.0f%%), %.0f MB/s   ", consumed / 1e9,
                     expected / 1e9, 100.0 * double(consumed) / double(expected), consumed / 1e6 / s);
        last = now;
      }
    }
    bin.read(at, bin.size() - at, carry + carried);
    carried += bin.size() - at;
  }
  if (carried > 0) fail(bin_paths.back(), "ends inside a token");
  writer.finish();
  if (written != total) throw Error("convert megatron: wrote " + std::to_string(written) + " tokens, expected " +
                                    std::to_string(total) + " (a bug)");
  if (opt.progress) std::fprintf(stderr, "\rconvert megatron: %.2f GB done%30s\n", consumed / 1e9, "");
  return written;
}

template <class Out>
Index stream_tokens(int code, h5::File& f, const MappedFile& idx, const std::vector<std::string>& bin_paths,
                    const MegatronOptions& opt, std::uint64_t expected) {
  switch (code) {
    case 1:
      return stream_tokens<std::uint8_t, Out>(f, idx, bin_paths, opt, expected);
    case 2:
      return stream_tokens<std::int8_t, Out>(f, idx, bin_paths, opt, expected);
    case 3:
      return stream_tokens<std::int16_t, Out>(f, idx, bin_paths, opt, expected);
    case 8:
      return stream_tokens<std::uint16_t, Out>(f, idx, bin_paths, opt, expected);
    case 4:
      return stream_tokens<std::int32_t, Out>(f, idx, bin_paths, opt, expected);
    default:
      return stream_tokens<std::int64_t, Out>(f, idx, bin_paths, opt, expected);
  }
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
    set_token_shard_attrs(f, opt.vocab_size, opt.eod_token, opt.tokenizer,
                          "megatron " + idx_path + (opt.append_eod ? " (EOD appended)" : ""));
    if (opt.vocab_size > 65536) {
      sum.tokens = stream_tokens<std::uint32_t>(code, f, idx, bin_paths, opt, expected);
    } else {
      sum.tokens = stream_tokens<std::uint16_t>(code, f, idx, bin_paths, opt, expected);
    }
    sum.sequences = Index(N);
    sum.documents = Index(D) - 1;
    f.close();  // a failure here (a full disk) is reported; the shard is not put in place
  }
  file.commit();
  return sum;
}

}  // namespace rewarm
