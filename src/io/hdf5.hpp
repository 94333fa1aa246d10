// Thin RAII layer over the HDF5 C API: files, attributes, whole and partial datasets,
// extendible 1-D series. Every failure throws rewarm::Error naming the file and object, with
// the cause HDF5 recorded (the OS's reason for a failed write, a checksum mismatch).
//
// Files are created in the HDF5 1.10 format (h5py and every HDF5 >= 1.10 read it): its
// metadata carries checksums. Chunked datasets carry HDF5's Fletcher32 checksum per chunk,
// which HDF5 verifies on every read, in rewarm and in h5py alike.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rewarm {
class WriteBehind;
}

namespace rewarm::h5 {

class Id {  // owns one hid_t
 public:
  Id() = default;
  Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Id(Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Id& operator=(Id&& o) noexcept {
    std::swap(id_, o.id_);
    std::swap(close_, o.close_);
    return *this;
  }
  ~Id();  // closes, keeping HDF5's error stack: a failure's cause is read after the cleanup
  operator hid_t() const { return id_; }
  hid_t release() {  // the id, no longer owned
    const hid_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

template <class T>
hid_t native_type();

// Call first in main, before MPI starts. HDF5 otherwise closes its open files at exit (or at
// MPI_Finalize), and a file whose close has already failed once (a full disk) crashed it there.
void init_library();

// What HDF5's most recent failure says of its cause: the OS's reason for a failed read or write
// ("No space left on device"), a checksum mismatch, a truncated file; "" when it says nothing.
std::string failure_cause();

class File {
 public:
  // ReadLive opens a file that another process may be writing in SWMR mode (a running metrics
  // file, or one whose writer was killed); AppendLive is that writer (HDF5 SWMR: readers may open
  // the file while it writes, and a crash leaves it readable as of the last flush).
  enum Mode { ReadOnly, ReadLive, ReadWrite, AppendLive, Create };
  // `expected` says what the file should be ("a rewarm checkpoint"), for the message when it is not.
  File(const std::string& path, Mode mode, const std::string& expected = "");
#ifdef H5_HAVE_PARALLEL
  // Creates `path` on every rank of `comm` together (MPI-IO). In such a file every call that
  // writes is collective: every rank makes it, with the same names and values, in the same order.
  File(const std::string& path, MPI_Comm comm);
#endif
  const std::string& path() const { return path_; }

  bool has_attr(const std::string& name) const;
  std::string attr_string(const std::string& name) const;
  std::int64_t attr_int(const std::string& name) const;
  double attr_double(const std::string& name) const;
  void set_attr(const std::string& name, const std::string& value);
  void set_attr(const std::string& name, std::int64_t value);
  void set_attr(const std::string& name, double value);

  bool exists(const std::string& dataset) const;  // also true for groups
  std::vector<std::int64_t> shape(const std::string& dataset) const;
  std::string type_name(const std::string& dataset) const;  // "uint16", "float32", ...

  // Whole datasets; groups on the path are created. A chunked (chunk > 0) 1-D dataset is
  // extendible, optionally deflate-compressed, and carries checksums unless `checksum` is false
  // (series appended in SWMR mode: a reader beside the writer would meet a chunk whose checksum
  // is being rewritten).
  template <class T>
  void write(const std::string& name, const T* data, const std::vector<std::int64_t>& shape, std::int64_t chunk = 0,
             int deflate = 0, bool checksum = true);
  // A fixed-shape dataset of any rank in chunks of about 1 MiB, each with its checksum.
  template <class T>
  void write_checksummed(const std::string& name, const T* data, const std::vector<std::int64_t>& shape);
  // The same dataset, of which only elements [first, first + count) of its row-major order are
  // written from `data`. In a parallel file every rank calls it with its own range (empty ones
  // too), and the writes are collective MPI-IO.
  template <class T>
  void write_checksummed_part(const std::string& name, const std::vector<std::int64_t>& shape, std::int64_t first,
                              std::int64_t count, const T* data);
  template <class T>
  std::vector<T> read(const std::string& name) const;
  // Elements [first, first + count) of the dataset's row-major order, of any rank, into `out`.
  template <class T>
  void read_part(const std::string& name, std::int64_t first, std::int64_t count, T* out) const;
  // The whole dataset into `out` (its element count), converted to T by HDF5.
  template <class T>
  void read_into(const std::string& name, T* out, std::size_t count) const;
  // True when the dataset's chunks carry checksums (HDF5's Fletcher32 filter).
  bool has_checksum(const std::string& name) const;
  // True when the file's metadata carries checksums (its superblock is version 2 or later).
  bool metadata_checksummed() const;
  // Reads every element of the dataset (in pieces of bounded size), so that HDF5 checks every
  // chunk's checksum; returns the bytes read. A mismatch throws, naming the dataset.
  std::uint64_t read_through(const std::string& name) const;

  std::vector<std::string> list(const std::string& group) const;  // member names
  // Every dataset in the file, full paths, in name order.
  std::vector<std::string> datasets() const;

  void flush();
  // Closes the file now (the destructor closes it otherwise); a failure throws, naming its cause.
  void close();
  hid_t id() const { return file_; }
  // chunk_cache_bytes > 0: HDF5's chunk cache for this dataset (the default is 1 MiB).
  Id open_dataset(const std::string& name, std::size_t chunk_cache_bytes = 0) const;

 private:
  [[noreturn]] void fail(const std::string& what) const;
  std::string path_;
  Id file_;
  Id transfer_;  // H5P_DEFAULT, or collective MPI-IO in a parallel file
};

// Repeated reads of element ranges of one 1-D dataset, which stays open (the hot path of
// data loading: no lookup per read).
class RangeReader {
 public:
  RangeReader(const File& file, const std::string& name);
  // Elements [offset, offset + count), converted to T by HDF5.
  template <class T>
  void read(std::int64_t offset, std::int64_t count, T* out) const;

 private:
  std::string where_;
  Id dataset_, space_;
};

// Appends to an extendible, chunked (optionally deflate-compressed) 1-D dataset: a dataset
// larger than memory is written piece by piece.
template <class T>
class AppendWriter {
 public:
  AppendWriter(File& file, const std::string& name, std::int64_t chunk, int deflate);
  // Appends to the existing dataset `name`, after its current elements.
  AppendWriter(File& file, const std::string& name);
  void append(const T* data, std::int64_t count);
  std::int64_t size() const { return size_; }

 private:
  std::string where_;
  Id dataset_;
  std::int64_t size_ = 0;
};

// A 1-D chunked, uncompressed dataset of known length, written straight into the file: HDF5
// allocates every chunk when the dataset is created, back to back, and write() puts elements
// at their file offsets with pwrite, with write-behind (if the chunks are not one extent,
// write() falls back to H5Dwrite). HDF5's own data path copies each chunk through its chunk cache and leaves the
// writeback to the end; for a streaming conversion this path is the difference between
// half and a third of the disk's read rate (bench/RESULTS.md). Nothing else may write the
// dataset while this writer exists.
template <class T>
class DirectWriter {
 public:
  DirectWriter(File& file, const std::string& name, std::int64_t size, std::int64_t chunk);
  ~DirectWriter();
  DirectWriter(const DirectWriter&) = delete;
  DirectWriter& operator=(const DirectWriter&) = delete;
  // Elements [first, first + count) from `data`; write-behind assumes increasing `first`.
  void write(std::int64_t first, const T* data, std::int64_t count);
  std::int64_t size() const { return size_; }
  bool direct() const { return fd_ >= 0; }  // false: the chunks are not one extent; H5Dwrite is used

 private:
  std::uint64_t chunk_address(std::int64_t c) const;  // file offset of chunk c
  std::string where_;
  Id dataset_;
  std::int64_t size_, chunk_;
  std::uint64_t base_ = 0;  // file offset of element 0
  int fd_ = -1;             // -1: the chunks are not one extent
  std::unique_ptr<WriteBehind> behind_;
};

}  // namespace rewarm::h5
