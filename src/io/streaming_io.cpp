#include "io/streaming_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"

namespace rewarm {

SequentialReader::SequentialReader(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno));
  size_ = std::uint64_t(st.st_size);
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);  // larger read-ahead
}

SequentialReader::~SequentialReader() {
  if (fd_ >= 0) ::close(fd_);
}

void SequentialReader::read(std::uint64_t at, std::uint64_t n, void* out) {
  auto* p = static_cast<char*>(out);
  for (std::uint64_t done = 0; done < n;) {
    const ssize_t got = ::pread(fd_, p + done, n - done, off_t(at + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(path_, std::string("read error: ") + std::strerror(errno));
    if (got == 0) fail(path_, "ends at byte " + std::to_string(at + done) + " (shrank while being read?)");
    done += std::uint64_t(got);
  }
  if (at > dropped_) {
    ::posix_fadvise(fd_, off_t(dropped_), off_t(at - dropped_), POSIX_FADV_DONTNEED);
    dropped_ = at;
  }
}

void WriteBehind::written(std::uint64_t end) {
  // Whole pages only: a page under writeback cannot take the rest of its bytes until the disk
  // write ends, which would make the next write wait for the disk.
  static const auto page = std::uint64_t(::sysconf(_SC_PAGESIZE));
  end = end / page * page;
  if (fd_ < 0 || end <= started_) return;
#ifdef __linux__
  ::sync_file_range(fd_, off_t(started_), off_t(end - started_), SYNC_FILE_RANGE_WRITE);
  // what was started two calls ago has had time to reach the disk: wait for it, then let it go
  const std::uint64_t old = marks_[0];
  if (old > dropped_) {
    ::sync_file_range(fd_, off_t(dropped_), off_t(old - dropped_),
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    ::posix_fadvise(fd_, off_t(dropped_), off_t(old - dropped_), POSIX_FADV_DONTNEED);
    dropped_ = old;
  }
#endif
  started_ = end;
  marks_[0] = marks_[1];
  marks_[1] = end;
}

}  // namespace rewarm
