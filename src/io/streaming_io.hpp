// Sequential streaming of files much larger than memory, without filling the page cache: the
// reader drops what it has consumed; the writer starts the disk writes of what it has written
// at once and drops them once they are on disk. Without this, converting a 30 GB shard leaves
// gigabytes of dirty pages for the kernel to throttle and flush at the end (bench/RESULTS.md).
// Both are hints to the kernel only: data and durability are those of plain reads and writes
// (AtomicFile still fsyncs before it renames).
#pragma once
#include <cstdint>
#include <string>

namespace rewarm {

// Reads one file front to back with pread into the caller's buffers.
class SequentialReader {
 public:
  explicit SequentialReader(const std::string& path);
  ~SequentialReader();
  SequentialReader(const SequentialReader&) = delete;
  SequentialReader& operator=(const SequentialReader&) = delete;
  std::uint64_t size() const { return size_; }
  // Bytes [at, at + n) into `out`; fails naming the file if they cannot all be read. Pages
  // before `at` are dropped from the page cache.
  void read(std::uint64_t at, std::uint64_t n, void* out);

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0, dropped_ = 0;
};

// Write-behind for a file written front to back through descriptor `fd` (not owned).
class WriteBehind {
 public:
  explicit WriteBehind(int fd) : fd_(fd) {}
  void written(std::uint64_t end);  // every byte before `end` has been written

 private:
  int fd_;
  std::uint64_t started_ = 0;     // writeback started for bytes before this
  std::uint64_t marks_[2] = {};   // `end` of the last two calls
  std::uint64_t dropped_ = 0;     // on disk and out of the page cache before this
};

}  // namespace rewarm
