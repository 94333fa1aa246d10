// Reader for HF safetensors files: u64 little-endian header length, JSON header, raw data.
// Every field is validated before any tensor is read.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rewarm {

struct SafeTensor {
  std::string file, dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // absolute byte range in file
};

// Tensor index of one .safetensors file, or of all shards named by a model.safetensors.index.json.
std::map<std::string, SafeTensor> safetensors_index(const std::string& path);

// Tensor data converted to float (F32, F16 and BF16 are accepted).
std::vector<float> safetensors_read_float(const SafeTensor& t);

// Writes one file with F32, F16 or BF16 data (converted from float, round-to-nearest-even).
void safetensors_write(const std::string& path, const std::vector<std::string>& names,
                       const std::vector<std::vector<std::int64_t>>& shapes, const std::vector<const float*>& data,
                       const std::string& dtype);

}  // namespace rewarm
