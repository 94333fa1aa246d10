#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"

namespace rewarm {

// fsync of a file or folder; fails with the OS's reason, naming it.
static void sync_path(const std::string& p, int flags, const std::string& what) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fail(p, "cannot open to sync " + what + ": " + std::strerror(errno));
  const bool ok = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) fail(p, "cannot sync " + what + " to disk: " + std::strerror(err));
}

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp") {}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(tmp_.c_str());
}

void AtomicFile::commit() {
  sync_path(tmp_, O_RDONLY, "the file");
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail(path_, "cannot rename " + tmp_ + " into place: " + std::strerror(errno));
  committed_ = true;
  const auto dir = std::filesystem::path(path_).parent_path();
  sync_path(dir.empty() ? "." : dir.string(), O_RDONLY | O_DIRECTORY, "the folder (the rename)");
}

void write_text_file(const std::string& path, const std::string& text) {
  AtomicFile out(path);
  std::ofstream f(out.tmp(), std::ios::binary | std::ios::trunc);
  if (!f) fail(out.tmp(), std::string("cannot create: ") + std::strerror(errno));
  f << text;
  f.close();  // the buffered part is written here: a full disk shows now
  if (!f) fail(out.tmp(), std::string("cannot write: ") + std::strerror(errno));
  out.commit();
}

}  // namespace rewarm
