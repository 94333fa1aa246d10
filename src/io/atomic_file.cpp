#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "core/error.hpp"

namespace rewarm {

static void fsync_path(const std::string& p, int flags) {
  const int fd = ::open(p.c_str(), flags);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp") {}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(tmp_.c_str());
}

void AtomicFile::commit() {
  fsync_path(tmp_, O_RDONLY);
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail(path_, "cannot rename " + tmp_ + " into place");
  committed_ = true;
  const auto dir = std::filesystem::path(path_).parent_path();
  fsync_path(dir.empty() ? "." : dir.string(), O_RDONLY | O_DIRECTORY);
}

}  // namespace rewarm
