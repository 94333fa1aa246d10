// An output file written under NAME.tmp and renamed to NAME by commit(), after fsync: a crash
// at any instant leaves either the old NAME or the complete new one, never half a file. An
// error (an exception unwinding past it) removes the .tmp.
#pragma once
#include <string>

namespace rewarm {

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  const std::string& tmp() const { return tmp_; }  // write here, close, then commit()
  void commit();                                   // fsync, rename into place, fsync the folder

 private:
  std::string path_, tmp_;
  bool committed_ = false;
};

// `text` as the whole of file `path`, through an AtomicFile; a failed write fails naming the file.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace rewarm
