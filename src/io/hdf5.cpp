#include "io/hdf5.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <regex>
#include <typeinfo>

#include "core/error.hpp"
#include "io/streaming_io.hpp"

namespace rewarm::h5 {

template <>
hid_t native_type<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
hid_t native_type<double>() {
  return H5T_NATIVE_DOUBLE;
}
template <>
hid_t native_type<std::int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t native_type<std::int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
hid_t native_type<std::uint32_t>() {
  return H5T_NATIVE_UINT32;
}
template <>
hid_t native_type<std::uint16_t>() {
  return H5T_NATIVE_UINT16;
}
template <>
hid_t native_type<std::uint64_t>() {
  return H5T_NATIVE_UINT64;
}
template <>
hid_t native_type<std::uint8_t>() {
  return H5T_NATIVE_UINT8;
}

Id::~Id() {
  if (id_ < 0 || !close_) return;
  if (H5Eget_num(H5E_DEFAULT) <= 0) {
    close_(id_);
    return;
  }
  const hid_t stack = H5Eget_current_stack();  // a close would clear it
  close_(id_);
  if (stack >= 0) H5Eset_current_stack(stack);
}

void init_library() {
  H5dont_atexit();                              // must precede every other HDF5 call
  H5open();                                     // before MPI_Init: HDF5 then hooks nothing into MPI_Finalize either
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by us, in one line
}

// The descriptions on HDF5's error stack, innermost last. Copied first: the walk must not
// run into an API call that clears the stack it walks.
static std::string error_stack_text() {
  std::string text;
  const hid_t stack = H5Eget_current_stack();
  if (stack < 0) return text;
  H5Ewalk2(
      stack, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
        if (e->desc) *static_cast<std::string*>(out) += std::string(e->desc) + "\n";
        return 0;
      },
      &text);
  H5Eclose_stack(stack);
  return text;
}

std::string failure_cause() {
  const std::string text = error_stack_text();
  std::smatch m;
  if (std::regex_search(text, m, std::regex("error message = '([^']*)'"))) return m[1];  // the sec2 driver's errno text
  if (text.find("Fletcher32") != std::string::npos) return "checksum mismatch: the data is damaged";
  if (text.find("checksum") != std::string::npos) return "metadata checksum mismatch: the file is damaged";
  if (std::regex_search(text, m, std::regex("truncated file: eof = ([0-9]+).*stored_eof = ([0-9]+)")))
    return "truncated: " + m[1].str() + " bytes of the " + m[2].str() + " its HDF5 superblock records";
  if (text.find("already open for write") != std::string::npos)
    return "HDF5 marks it as open for writing: another process writes it, or its writer was killed";
  return "";
}

static std::string with_cause(const std::string& what) {
  const auto cause = failure_cause();
  return cause.empty() ? what : what + ": " + cause;
}

void File::fail(const std::string& what) const {
  const int err = errno;  // MPI-IO leaves the OS's reason here, not on HDF5's stack
  const auto cause = failure_cause();
  if (cause.empty() && transfer_ >= 0 && err) rewarm::fail(path_, what + ": " + std::strerror(err));
  rewarm::fail(path_, cause.empty() ? what : what + ": " + cause);
}

// "1234 bytes, HDF5 signature at byte 0" for messages about a file HDF5 cannot open.
static std::string describe_file(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return "size unknown";
  std::string out = std::to_string(size) + " bytes";
  if (size == 0) return out + ", empty";
  static const char signature[8] = {'\211', 'H', 'D', 'F', '\r', '\n', '\032', '\n'};
  FILE* f = std::fopen(path.c_str(), "rb");
  for (std::uintmax_t at = 0; f && at + 8 <= size; at = at ? at * 2 : 512) {  // 0, then a user block of 512·2^k
    char head[8];
    if (std::fseek(f, long(at), SEEK_SET) != 0 || std::fread(head, 1, 8, f) != 8) break;
    if (std::memcmp(head, signature, 8) == 0) {
      std::fclose(f);
      return out + ", HDF5 signature at byte " + std::to_string(at);
    }
  }
  if (f) std::fclose(f);
  return out + ", no HDF5 signature";
}

// HDF5's file access settings: the 1.10 format (metadata checksums, SWMR) for what we write,
// and no HDF5 file locks (as HDF5_USE_FILE_LOCKING=FALSE). rewarm never shares a file between a
// writer and a reader that those locks would protect: shards and checkpoints are written under
// NAME.tmp and renamed when complete, and the metrics' SWMR writer is the only one behind the
// run_dir lock. HDF5's locks would refuse SWMR readers for a moment at every open and close of
// the writer (and the writer while a reader holds the file), and fail where the file system
// offers no locks (some Lustre and NFS mounts). One setting for every file, since one process
// may open a file only with the locking setting it already has it open with.
static Id file_access(bool writes) {
  Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
#if H5_VERSION_GE(1, 12, 1) || (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)
  H5Pset_file_locking(fapl, false, true);
#endif
  if (writes) H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
  return fapl;
}

// Creates dataset `name` (and the groups on its path); returns a negative id on failure.
static hid_t create_dataset(hid_t file, const std::string& name, hid_t type, hid_t space, hid_t dcpl) {
  Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl, 1);
  return H5Dcreate2(file, name.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT);
}

// Writes elements [first, first + count) of a 1-D dataset from `data`.
template <class T>
static bool write_range(hid_t dataset, std::int64_t first, std::int64_t count, const T* data) {
  hsize_t off = hsize_t(first), n = hsize_t(count);
  Id fs(H5Dget_space(dataset), H5Sclose);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, nullptr, &n, nullptr);
  Id ms(H5Screate_simple(1, &n, nullptr), H5Sclose);
  return H5Dwrite(dataset, native_type<T>(), ms, fs, H5P_DEFAULT, data) >= 0;
}

File::File(const std::string& path, Mode mode, const std::string& expected) : path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by us, in one line
  const std::string expect = expected.empty() ? "" : "; expected " + expected;
  hid_t id;
  if (mode == Create) {
    const Id fapl = file_access(true);
    id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (id < 0) fail("cannot create HDF5 file");
  } else {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
      const std::string why = std::strerror(errno);
      const bool relative = !path.empty() && path[0] != '/';
      rewarm::fail(path_, "cannot open: " + why +
                              (relative ? " (relative to " + std::filesystem::current_path().string() + ")" : ""));
    }
    std::fclose(f);
    if (H5Fis_hdf5(path.c_str()) <= 0) rewarm::fail(path_, "not an HDF5 file (" + describe_file(path) + ")" + expect);
    const unsigned flags[] = {H5F_ACC_RDONLY, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5F_ACC_RDWR,
                              H5F_ACC_RDWR | H5F_ACC_SWMR_WRITE};
    const Id fapl = file_access(mode == AppendLive);
    id = H5Fopen(path.c_str(), flags[mode], fapl);
    if (id < 0) rewarm::fail(path_, with_cause("cannot open HDF5 file (" + describe_file(path) + ")") + expect);
  }
  file_ = Id(id, H5Fclose);
}

#ifdef H5_HAVE_PARALLEL
File::File(const std::string& path, MPI_Comm comm) : path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const Id fapl = file_access(true);
  H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (id < 0) fail("cannot create HDF5 file");
  file_ = Id(id, H5Fclose);
  transfer_ = Id(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  H5Pset_dxpl_mpio(transfer_, H5FD_MPIO_COLLECTIVE);  // filtered (checksummed) chunks need collective writes
}
#endif

// Selects elements [first, first + count) of the row-major order of a dataspace of extent
// `dims`: a partial first row, whole rows, a partial last row, recursively in the inner dimensions.
static void select_flat(hid_t space, const std::vector<hsize_t>& dims, hsize_t first, hsize_t count) {
  H5Sselect_none(space);
  std::vector<hsize_t> start(dims.size(), 0), size(dims.size(), 1);
  bool any = false;
  auto add = [&] {
    H5Sselect_hyperslab(space, any ? H5S_SELECT_OR : H5S_SELECT_SET, start.data(), nullptr, size.data(), nullptr);
    any = true;
  };
  std::function<void(std::size_t, hsize_t, hsize_t)> range = [&](std::size_t d, hsize_t f, hsize_t n) {
    if (n == 0) return;
    hsize_t inner = 1;
    for (std::size_t k = d + 1; k < dims.size(); ++k) inner *= dims[k];
    for (std::size_t k = d + 1; k < dims.size(); ++k) start[k] = 0, size[k] = dims[k];
    hsize_t row = f / inner;
    if (f % inner) {  // the end of a row
      const hsize_t m = std::min(n, inner - f % inner);
      start[d] = row++, size[d] = 1;
      range(d + 1, f % inner, m);
      n -= m;
    }
    if (n >= inner) {  // whole rows
      for (std::size_t k = d + 1; k < dims.size(); ++k) start[k] = 0, size[k] = dims[k];
      start[d] = row, size[d] = n / inner;
      add();
      row += n / inner, n %= inner;
    }
    if (n) {  // the start of a row
      start[d] = row, size[d] = 1;
      range(d + 1, 0, n);
    }
  };
  if (dims.empty()) {
    if (count) H5Sselect_all(space);
    return;
  }
  range(0, first, count);
}

void File::close() {
  errno = 0;
  if (H5Fclose(file_.release()) < 0) fail("cannot close (the last writes failed)");
}

bool File::has_attr(const std::string& name) const { return H5Aexists(file_, name.c_str()) > 0; }

static Id open_attr(const File& f, hid_t file, const std::string& name) {
  if (!f.has_attr(name)) rewarm::fail(f.path(), "missing attribute '" + name + "'");
  return Id(H5Aopen(file, name.c_str(), H5P_DEFAULT), H5Aclose);
}

std::string File::attr_string(const std::string& name) const {
  Id a = open_attr(*this, file_, name);
  Id t(H5Aget_type(a), H5Tclose);
  if (H5Tget_class(t) != H5T_STRING) fail("attribute '" + name + "' is not a string");
  if (H5Tis_variable_str(t) > 0) {
    Id mt(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t));
    char* s = nullptr;
    if (H5Aread(a, mt, &s) < 0) fail("cannot read attribute '" + name + "'");
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  std::string out(H5Tget_size(t), '\0');
  if (H5Aread(a, t, out.data()) < 0) fail("cannot read attribute '" + name + "'");
  while (!out.empty() && out.back() == '\0') out.pop_back();
  return out;
}

std::int64_t File::attr_int(const std::string& name) const {
  Id a = open_attr(*this, file_, name);
  std::int64_t v = 0;
  if (H5Aread(a, H5T_NATIVE_INT64, &v) < 0) fail("attribute '" + name + "' is not an integer");
  return v;
}

double File::attr_double(const std::string& name) const {
  Id a = open_attr(*this, file_, name);
  double v = 0;
  if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) fail("attribute '" + name + "' is not a number");
  return v;
}

static void write_attr(const File& f, hid_t file, const std::string& name, hid_t type, const void* data) {
  if (H5Aexists(file, name.c_str()) > 0) H5Adelete(file, name.c_str());
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  Id a(H5Acreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (a < 0 || H5Awrite(a, type, data) < 0) rewarm::fail(f.path(), "cannot write attribute '" + name + "'");
}

void File::set_attr(const std::string& name, const std::string& value) {
  Id t(H5Tcopy(H5T_C_S1), H5Tclose);  // variable-length UTF-8: what h5py reads as str
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  const char* p = value.c_str();
  write_attr(*this, file_, name, t, &p);
}
void File::set_attr(const std::string& name, std::int64_t value) {
  write_attr(*this, file_, name, H5T_NATIVE_INT64, &value);
}
void File::set_attr(const std::string& name, double value) {
  write_attr(*this, file_, name, H5T_NATIVE_DOUBLE, &value);
}

bool File::exists(const std::string& name) const {
  // check each path component, as H5Lexists requires
  std::size_t pos = 0;
  while ((pos = name.find('/', pos + 1)) != std::string::npos)
    if (H5Lexists(file_, name.substr(0, pos).c_str(), H5P_DEFAULT) <= 0) return false;
  return H5Lexists(file_, name.c_str(), H5P_DEFAULT) > 0;
}

Id File::open_dataset(const std::string& name, std::size_t chunk_cache_bytes) const {
  if (!exists(name)) fail("missing dataset '" + name + "'");
  Id dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  if (chunk_cache_bytes > 0) H5Pset_chunk_cache(dapl, 12421, chunk_cache_bytes, 1.0);  // prime slot count
  hid_t d = H5Dopen2(file_, name.c_str(), dapl);
  if (d < 0) fail("'" + name + "' is not a dataset");
  return Id(d, H5Dclose);
}

std::vector<std::int64_t> File::shape(const std::string& name) const {
  Id d = open_dataset(name);
  Id s(H5Dget_space(d), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(s);
  std::vector<hsize_t> dims(rank > 0 ? rank : 0);
  H5Sget_simple_extent_dims(s, dims.data(), nullptr);
  return std::vector<std::int64_t>(dims.begin(), dims.end());
}

std::string File::type_name(const std::string& name) const {
  Id d = open_dataset(name);
  Id t(H5Dget_type(d), H5Tclose);
  const auto size = H5Tget_size(t) * 8;
  switch (H5Tget_class(t)) {
    case H5T_INTEGER:
      return (H5Tget_sign(t) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(size);
    case H5T_FLOAT:
      return "float" + std::to_string(size);
    default:
      return "other";
  }
}

template <class T>
void File::write(const std::string& name, const T* data, const std::vector<std::int64_t>& shape, std::int64_t chunk,
                 int deflate, bool checksum) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  const bool chunked = chunk > 0 && dims.size() == 1;
  hsize_t unlimited = H5S_UNLIMITED;
  Id space(H5Screate_simple(int(dims.size()), dims.data(), chunked ? &unlimited : nullptr), H5Sclose);
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (chunked) {
    const hsize_t c = hsize_t(chunk);  // extendible: later appends fill whole chunks
    H5Pset_chunk(dcpl, 1, &c);
    if (deflate > 0) H5Pset_deflate(dcpl, unsigned(deflate));
    if (checksum) H5Pset_fletcher32(dcpl);
  }
  Id d(create_dataset(file_, name, native_type<T>(), space, dcpl), H5Dclose);
  if (d < 0) fail("cannot create dataset '" + name + "'");
  if (H5Sget_simple_extent_npoints(space) > 0 && H5Dwrite(d, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    fail("cannot write dataset '" + name + "'");
}

template <class T>
void File::write_checksummed(const std::string& name, const T* data, const std::vector<std::int64_t>& shape) {
  std::int64_t elements = 1;
  for (auto d : shape) elements *= d;
  write_checksummed_part(name, shape, 0, elements, data);
}

template <class T>
void File::write_checksummed_part(const std::string& name, const std::vector<std::int64_t>& shape, std::int64_t first,
                                  std::int64_t count, const T* data) {
  errno = 0;  // a failure's errno is then this call's (fail())
  std::vector<hsize_t> dims(shape.begin(), shape.end()), chunk = dims;
  hsize_t elements = 1, per_row = 1;
  for (hsize_t d : dims) elements *= d;
  for (std::size_t i = 1; i < dims.size(); ++i) per_row *= dims[i];
  Id space(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose);
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (elements > 0 && !dims.empty()) {  // whole rows, about 1 MiB a chunk
    const hsize_t rows = std::max<hsize_t>(1, (hsize_t(1) << 20) / sizeof(T) / std::max<hsize_t>(per_row, 1));
    chunk[0] = std::min(dims[0], rows);
    H5Pset_chunk(dcpl, int(chunk.size()), chunk.data());
    H5Pset_fletcher32(dcpl);
    // Parallel HDF5 allocates every chunk at creation and would write it full of fill values
    // first: the whole checkpoint twice. Every chunk is then written whole by the ranks together.
    if (transfer_ >= 0) H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  }
  Id d(create_dataset(file_, name, native_type<T>(), space, dcpl), H5Dclose);
  if (d < 0) fail("cannot create dataset '" + name + "'");
  if (elements == 0) return;
  const hsize_t n = hsize_t(std::max<std::int64_t>(count, 1));
  Id memory(H5Screate_simple(1, &n, nullptr), H5Sclose);
  if (count > 0) {
    select_flat(space, dims, hsize_t(first), hsize_t(count));
  } else {  // this rank writes nothing but joins the collective write
    H5Sselect_none(space);
    H5Sselect_none(memory);
  }
  const T none{};
  const hid_t transfer = transfer_ < 0 ? H5P_DEFAULT : hid_t(transfer_);
  if (H5Dwrite(d, native_type<T>(), memory, space, transfer, count > 0 ? data : &none) < 0)
    fail("cannot write dataset '" + name + "'");
}

template <class T>
void File::read_part(const std::string& name, std::int64_t first, std::int64_t count, T* out) const {
  if (count <= 0) return;
  Id d = open_dataset(name);
  Id space(H5Dget_space(d), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(std::size_t(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  hsize_t elements = 1;
  for (auto e : dims) elements *= e;
  if (first < 0 || hsize_t(first + count) > elements)
    fail("dataset '" + name + "' has " + std::to_string(elements) + " elements, not [" + std::to_string(first) + ", " +
         std::to_string(first + count) + ")");
  select_flat(space, dims, hsize_t(first), hsize_t(count));
  const hsize_t n = hsize_t(count);
  Id memory(H5Screate_simple(1, &n, nullptr), H5Sclose);
  if (H5Dread(d, native_type<T>(), memory, space, H5P_DEFAULT, out) < 0) fail("cannot read dataset '" + name + "'");
}

template <class T>
void File::read_into(const std::string& name, T* out, std::size_t count) const {
  Id d = open_dataset(name);
  Id s(H5Dget_space(d), H5Sclose);
  const auto n = std::size_t(H5Sget_simple_extent_npoints(s));
  if (n != count)
    fail("dataset '" + name + "' has " + std::to_string(n) + " elements, expected " + std::to_string(count));
  if (n > 0 && H5Dread(d, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
    fail("cannot read dataset '" + name + "'");
}

template <class T>
std::vector<T> File::read(const std::string& name) const {
  Id d = open_dataset(name);
  Id s(H5Dget_space(d), H5Sclose);
  std::vector<T> out(std::size_t(H5Sget_simple_extent_npoints(s)));
  read_into(name, out.data(), out.size());
  return out;
}

bool File::has_checksum(const std::string& name) const {
  Id d = open_dataset(name);
  Id dcpl(H5Dget_create_plist(d), H5Pclose);
  unsigned flags = 0;
  std::size_t nvalues = 0;
  return H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nvalues, nullptr, 0, nullptr, nullptr) >= 0;
}

bool File::metadata_checksummed() const {
  H5F_info2_t info{};
  return H5Fget_info2(file_, &info) >= 0 && info.super.version >= 2;
}

std::uint64_t File::read_through(const std::string& name) const {
  Id d = open_dataset(name);
  Id space(H5Dget_space(d), H5Sclose);
  Id type(H5Dget_type(d), H5Tclose);
  Id native(H5Tget_native_type(type, H5T_DIR_ASCEND), H5Tclose);
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(std::size_t(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  const std::size_t element = H5Tget_size(native);
  hsize_t row = 1;  // elements per index of the first dimension
  for (std::size_t i = 1; i < dims.size(); ++i) row *= dims[i];
  if (dims.empty() || dims[0] == 0 || row == 0) return 0;
  const hsize_t rows_per_piece = std::max<hsize_t>(1, (hsize_t(64) << 20) / (row * element));
  std::vector<char> buffer;
  for (hsize_t first = 0; first < dims[0]; first += rows_per_piece) {
    std::vector<hsize_t> start(dims.size(), 0), count = dims;
    start[0] = first;
    count[0] = std::min(rows_per_piece, dims[0] - first);
    buffer.resize(std::size_t(count[0] * row) * element);
    Id file_space(H5Dget_space(d), H5Sclose);
    H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    Id memory(H5Screate_simple(int(count.size()), count.data(), nullptr), H5Sclose);
    if (H5Dread(d, native, memory, file_space, H5P_DEFAULT, buffer.data()) < 0)
      fail("cannot read dataset '" + name + "'");
  }
  return std::uint64_t(dims[0] * row) * element;
}

std::vector<std::string> File::datasets() const {
  std::vector<std::string> out;
  std::vector<std::string> groups{"/"};
  while (!groups.empty()) {
    const std::string g = groups.back();
    groups.pop_back();
    for (const auto& member : list(g)) {
      const std::string path = (g == "/" ? "" : g) + "/" + member;
      Id obj(H5Oopen(file_, path.c_str(), H5P_DEFAULT), H5Oclose);
      if (obj < 0) fail("cannot open object '" + path + "'");
      const auto type = H5Iget_type(obj);
      if (type == H5I_GROUP) groups.push_back(path);
      if (type == H5I_DATASET) out.push_back(path);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

RangeReader::RangeReader(const File& file, const std::string& name)
    : where_(file.path() + ": '" + name + "'"),
      dataset_(file.open_dataset(name, 32 << 20)),
      space_(H5Dget_space(dataset_), H5Sclose) {}

template <class T>
void RangeReader::read(std::int64_t offset, std::int64_t count, T* out) const {
  hsize_t off = hsize_t(offset), cnt = hsize_t(count);
  if (H5Sselect_hyperslab(space_, H5S_SELECT_SET, &off, nullptr, &cnt, nullptr) < 0)
    throw Error(where_ + ": bad range");
  Id ms(H5Screate_simple(1, &cnt, nullptr), H5Sclose);
  if (H5Dread(dataset_, native_type<T>(), ms, space_, H5P_DEFAULT, out) < 0)
    throw Error(with_cause(where_ + ": cannot read elements [" + std::to_string(offset) + ", " +
                           std::to_string(offset + count) + ")"));
}

std::vector<std::string> File::list(const std::string& group) const {
  std::vector<std::string> names;
  if (!exists(group)) return names;
  Id g(H5Gopen2(file_, group.c_str(), H5P_DEFAULT), H5Gclose);
  H5G_info_t info;
  H5Gget_info(g, &info);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string s(std::size_t(len), '\0');
    H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), std::size_t(len) + 1, H5P_DEFAULT);
    names.push_back(s);
  }
  return names;
}

void File::flush() {
  errno = 0;
  if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) fail("cannot flush");
}

template <class T>
AppendWriter<T>::AppendWriter(File& file, const std::string& name, std::int64_t chunk, int deflate)
    : where_(file.path() + ": '" + name + "'") {
  const std::int64_t none = 0;
  file.write<T>(name, nullptr, {none}, chunk, deflate);  // empty, extendible
  dataset_ = file.open_dataset(name);
}

template <class T>
AppendWriter<T>::AppendWriter(File& file, const std::string& name)
    : where_(file.path() + ": '" + name + "'"), dataset_(file.open_dataset(name)) {
  Id s(H5Dget_space(dataset_), H5Sclose);
  size_ = std::int64_t(H5Sget_simple_extent_npoints(s));
}

template <class T>
void AppendWriter<T>::append(const T* data, std::int64_t count) {
  if (count == 0) return;
  const hsize_t total = hsize_t(size_ + count);
  if (H5Dset_extent(dataset_, &total) < 0) throw Error(with_cause(where_ + ": cannot extend"));
  if (!write_range(dataset_, size_, count, data)) throw Error(with_cause(where_ + ": write failed"));
  size_ += count;
}

template <class T>
DirectWriter<T>::DirectWriter(File& file, const std::string& name, std::int64_t size, std::int64_t chunk)
    : where_(file.path() + ": '" + name + "'"), size_(size), chunk_(std::min(chunk, size)) {
  if (size <= 0 || chunk <= 0) throw Error(where_ + ": a direct writer needs a positive size and chunk");
  // A fixed-size dataset in the HDF5 1.10 format indexes its chunks with one fixed array,
  // allocated apart, so the chunks lie back to back (the 1.8 B-tree interleaves its nodes).
  if (H5Fset_libver_bounds(file.id(), H5F_LIBVER_V110, H5F_LIBVER_V110) < 0)
    throw Error(where_ + ": cannot select the HDF5 1.10 file format");
  hsize_t dims = hsize_t(size), c = hsize_t(chunk_);
  Id space(H5Screate_simple(1, &dims, nullptr), H5Sclose);
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(dcpl, 1, &c);
  H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);  // every chunk has its place in the file now
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);    // ... which write() fills, once
  dataset_ = Id(create_dataset(file.id(), name, native_type<T>(), space, dcpl), H5Dclose);
  if (dataset_ < 0) throw Error(where_ + ": cannot create dataset");
  // HDF5 1.10 finds a chunk's address by walking its index (linear time), so look up only the
  // first and the last: allocated in order, back to back, they make one extent of the file.
  const std::int64_t last = (size_ - 1) / chunk_;
  base_ = chunk_address(0);
  if (chunk_address(last) != base_ + std::uint64_t(last * chunk_) * sizeof(T)) return;  // write() asks HDF5
  fd_ = ::open(file.path().c_str(), O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(where_ + ": cannot open for writing: " + std::strerror(errno));
  behind_ = std::make_unique<WriteBehind>(fd_);
}

template <class T>
DirectWriter<T>::~DirectWriter() {
  if (fd_ >= 0) ::close(fd_);
}

template <class T>
std::uint64_t DirectWriter<T>::chunk_address(std::int64_t c) const {
  hsize_t coord = hsize_t(c * chunk_), bytes = 0;
  haddr_t address = HADDR_UNDEF;
  unsigned filters = 0;
  if (H5Dget_chunk_info_by_coord(dataset_, &coord, &filters, &address, &bytes) < 0 || address == HADDR_UNDEF)
    throw Error(where_ + ": chunk " + std::to_string(c) + " was not allocated");
  return std::uint64_t(address);
}

template <class T>
void DirectWriter<T>::write(std::int64_t first, const T* data, std::int64_t count) {
  if (first < 0 || count < 0 || first + count > size_)
    throw Error(where_ + ": elements [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") lie outside the dataset's " + std::to_string(size_));
  if (count == 0) return;
  if (fd_ < 0) {  // chunks not back to back: HDF5 places them
    if (!write_range(dataset_, first, count, data)) throw Error(with_cause(where_ + ": write failed"));
    return;
  }
  const auto* bytes = reinterpret_cast<const char*>(data);
  const std::uint64_t at = base_ + std::uint64_t(first) * sizeof(T), total = std::uint64_t(count) * sizeof(T);
  for (std::uint64_t done = 0; done < total;) {
    const ssize_t put = ::pwrite(fd_, bytes + done, total - done, off_t(at + done));
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) throw Error(where_ + ": write failed: " + std::strerror(errno));
    done += std::uint64_t(put);
  }
  behind_->written(at + total);
}

#define REWARM_H5_INSTANTIATE(T)                                                                                    \
  template void File::write<T>(const std::string&, const T*, const std::vector<std::int64_t>&, std::int64_t, int,   \
                               bool);                                                                               \
  template void File::write_checksummed<T>(const std::string&, const T*, const std::vector<std::int64_t>&);         \
  template void File::write_checksummed_part<T>(const std::string&, const std::vector<std::int64_t>&, std::int64_t, \
                                                std::int64_t, const T*);                                            \
  template void File::read_part<T>(const std::string&, std::int64_t, std::int64_t, T*) const;                       \
  template std::vector<T> File::read<T>(const std::string&) const;                                                  \
  template void File::read_into<T>(const std::string&, T*, std::size_t) const;                                      \
  template void RangeReader::read<T>(std::int64_t, std::int64_t, T*) const;
REWARM_H5_INSTANTIATE(float)
REWARM_H5_INSTANTIATE(double)
REWARM_H5_INSTANTIATE(std::int64_t)
REWARM_H5_INSTANTIATE(std::int32_t)
REWARM_H5_INSTANTIATE(std::uint32_t)
REWARM_H5_INSTANTIATE(std::uint16_t)
REWARM_H5_INSTANTIATE(std::uint8_t)
template class AppendWriter<std::uint16_t>;
template class AppendWriter<std::uint32_t>;
template class AppendWriter<std::int64_t>;
template class AppendWriter<double>;
template class DirectWriter<std::uint16_t>;
template class DirectWriter<std::uint32_t>;

}  // namespace rewarm::h5
