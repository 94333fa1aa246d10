#include "io/stored_tokenizer.hpp"

#include <cstdint>
#include <vector>

#include "io/hdf5.hpp"

namespace rewarm {

static const char* const kDataset = "/tokenizer.json";

void write_tokenizer(h5::File& f, const std::string& json, bool this_part,
                     const std::function<void(const std::function<void()>&)>& step) {
  const auto bytes = std::int64_t(json.size());
  if (bytes == 0) return;
  const auto* data = reinterpret_cast<const std::uint8_t*>(json.data());
  step([&] { f.write_checksummed_part(kDataset, {bytes}, 0, this_part ? bytes : 0, data); });
}

std::string read_tokenizer(const h5::File& f) {
  if (!f.exists(kDataset)) return "";
  const auto bytes = f.read<std::uint8_t>(kDataset);
  return std::string(bytes.begin(), bytes.end());
}

std::string read_tokenizer(const std::string& path) { return read_tokenizer(h5::File(path, h5::File::ReadOnly)); }

}  // namespace rewarm
