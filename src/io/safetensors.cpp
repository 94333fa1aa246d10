#include "io/safetensors.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/json.hpp"

namespace rewarm {

static std::size_t dtype_size(const std::string& dt) {
  static const std::map<std::string, std::size_t> sizes{{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                                                        {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1},
                                                        {"U16", 2}, {"U32", 4}, {"U64", 8}};
  auto it = sizes.find(dt);
  return it == sizes.end() ? 0 : it->second;
}

static std::map<std::string, SafeTensor> index_one(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) fail(path, "cannot open");
  const std::uint64_t file_size = std::uint64_t(f.tellg());
  if (file_size < 8) fail(path, "not a safetensors file: shorter than its 8-byte header length");
  f.seekg(0);
  unsigned char len_bytes[8];
  f.read(reinterpret_cast<char*>(len_bytes), 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > file_size - 8)
    fail(path, "header length " + std::to_string(n) + " exceeds the file size " + std::to_string(file_size));
  if (n > (std::uint64_t(100) << 20)) fail(path, "header length " + std::to_string(n) + " is over 100 MB");
  std::string header(n, '\0');
  f.read(header.data(), std::streamsize(n));
  const nlohmann::json j = parse_json(header, path, "header is not valid JSON");
  if (!j.is_object()) fail(path, "header is not a JSON object");
  const std::uint64_t data_begin = 8 + n, data_size = file_size - data_begin;
  std::map<std::string, SafeTensor> out;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (auto& [name, e] : j.items()) {
    if (name == "__metadata__") continue;
    const std::string where = "tensor '" + name + "'";
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      fail(path, where + " lacks dtype, shape or data_offsets");
    SafeTensor t;
    t.file = path;
    if (!e["dtype"].is_string()) fail(path, where + ": dtype is not a string");
    t.dtype = e["dtype"].get<std::string>();
    const std::size_t esize = dtype_size(t.dtype);
    if (esize == 0) fail(path, where + ": unknown dtype " + t.dtype);
    std::uint64_t count = 1;
    if (!e["shape"].is_array()) fail(path, where + ": shape is not an array");
    for (auto& s : e["shape"]) {
      if (!s.is_number_unsigned()) fail(path, where + ": shape holds a non-integer or negative entry");
      t.shape.push_back(s.get<std::int64_t>());
      if (t.shape.back() != 0 && count > (std::uint64_t(1) << 62) / std::uint64_t(t.shape.back()))
        fail(path, where + ": shape overflows");
      count *= std::uint64_t(t.shape.back());
    }
    auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(path, where + ": data_offsets is not two non-negative integers");
    const std::uint64_t b = off[0], en = off[1];
    if (b > en) fail(path, where + ": data_offsets begin > end");
    if (en > data_size)
      fail(path, where + ": data_offsets end " + std::to_string(en) + " is past the data (" +
                     std::to_string(data_size) + " bytes)");
    if (en - b != count * esize)
      fail(path, where + ": " + std::to_string(en - b) + " bytes do not hold shape × " + t.dtype + " = " +
                     std::to_string(count * esize) + " bytes");
    t.begin = data_begin + b;
    t.end = data_begin + en;
    ranges.emplace_back(b, en);
    out.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) fail(path, "tensor data ranges overlap");
  return out;
}

std::map<std::string, SafeTensor> safetensors_index(const std::string& path) {
  const std::string suffix = ".index.json";
  if (path.size() < suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0)
    return index_one(path);
  const nlohmann::json j = read_json_file(path);
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail(path, "has no weight_map object");
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::map<std::string, std::map<std::string, SafeTensor>> shards;
  std::map<std::string, SafeTensor> out;
  for (auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) fail(path, "weight_map entry '" + name + "' is not a file name");
    const std::string shard = dir + file.get<std::string>();
    if (!shards.count(shard)) shards[shard] = index_one(shard);
    auto it = shards[shard].find(name);
    if (it == shards[shard].end()) fail(shard, "has no tensor '" + name + "' that " + path + " maps to it");
    out[name] = it->second;
  }
  return out;
}

static float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  std::uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: value = man · 2^-24
      float v = float(man) * 0x1.0p-24f;
      std::memcpy(&bits, &v, 4);
      bits |= sign;
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static std::uint16_t float_to_bf16(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return std::uint16_t((b >> 16) | 0x40);  // quiet NaN
  b += 0x7FFFu + ((b >> 16) & 1);                                               // round to nearest even
  return std::uint16_t(b >> 16);
}

static std::uint16_t float_to_half(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  const std::uint32_t sign = (b >> 16) & 0x8000;
  const std::uint32_t abs = b & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return std::uint16_t(sign | 0x7E00);
  if (abs >= 0x477FF000u) return std::uint16_t(sign | 0x7C00);  // rounds to ≥ 65520: infinity
  if (abs < 0x38800000u) {                                      // subnormal half
    float a;
    std::memcpy(&a, &abs, 4);
    return std::uint16_t(sign | std::uint32_t(std::nearbyint(a * 0x1.0p24f)));
  }
  std::uint32_t m = abs + 0xFFFu + ((abs >> 13) & 1);  // round mantissa to 10 bits, nearest even
  return std::uint16_t(sign | ((m - 0x38000000u) >> 13));
}

std::vector<float> safetensors_read_float(const SafeTensor& t) {
  std::ifstream f(t.file, std::ios::binary);
  if (!f) fail(t.file, "cannot open");
  std::vector<char> raw(t.end - t.begin);
  f.seekg(std::streamoff(t.begin));
  f.read(raw.data(), std::streamsize(raw.size()));
  if (!f) fail(t.file, "truncated while reading tensor data");
  const std::size_t esize = dtype_size(t.dtype), n = raw.size() / std::max<std::size_t>(esize, 1);
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const char* p = raw.data() + i * esize;
    if (t.dtype == "F32") {
      std::memcpy(&out[i], p, 4);
    } else if (t.dtype == "F16" || t.dtype == "BF16") {
      std::uint16_t h;
      std::memcpy(&h, p, 2);
      if (t.dtype == "F16") {
        out[i] = half_to_float(h);
      } else {
        std::uint32_t bits = std::uint32_t(h) << 16;
        std::memcpy(&out[i], &bits, 4);
      }
    } else {
      fail(t.file, "tensor dtype " + t.dtype + " cannot be read as a float parameter");
    }
  }
  return out;
}

void safetensors_write(const std::string& path, const std::vector<std::string>& names,
                       const std::vector<std::vector<std::int64_t>>& shapes, const std::vector<const float*>& data,
                       const std::string& dtype) {
  const std::size_t esize = dtype_size(dtype);
  if (dtype != "F32" && dtype != "F16" && dtype != "BF16") fail(path, "cannot write dtype " + dtype);
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::uint64_t offset = 0;
  std::vector<std::size_t> counts;
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::size_t count = 1;
    for (auto s : shapes[i]) count *= std::size_t(s);
    counts.push_back(count);
    header[names[i]] = {{"dtype", dtype}, {"shape", shapes[i]}, {"data_offsets", {offset, offset + count * esize}}};
    offset += count * esize;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data to 8 bytes, as the reference writer does
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail(path, "cannot create");
  const std::uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) f.put(char((n >> (8 * i)) & 0xFF));
  f.write(h.data(), std::streamsize(h.size()));
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (dtype == "F32") {
      f.write(reinterpret_cast<const char*>(data[i]), std::streamsize(counts[i] * 4));
      continue;
    }
    std::vector<std::uint16_t> buf(counts[i]);
    for (std::size_t k = 0; k < counts[i]; ++k)
      buf[k] = dtype == "BF16" ? float_to_bf16(data[i][k]) : float_to_half(data[i][k]);
    f.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size() * 2));
  }
  f.close();  // the buffered tail is written here: a full disk shows now
  if (!f) fail(path, std::string("write failed: ") + std::strerror(errno));
}

}  // namespace rewarm
