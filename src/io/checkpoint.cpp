#include "io/checkpoint.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "core/error.hpp"
#include "core/json.hpp"
#include "io/atomic_file.hpp"
#include "io/hdf5.hpp"
#include "io/stored_tokenizer.hpp"
#include "model/param_layout.hpp"

namespace rewarm {
namespace fs = std::filesystem;

static std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string o = "[";
  for (std::size_t i = 0; i < s.size(); ++i) o += (i ? "," : "") + std::to_string(s[i]);
  return o + "]";
}

void write_checkpoint_contents(h5::File& f, const CheckpointHeader& h, const FlatPart& part,
                               const std::function<void(const std::function<void()>&)>& step) {
  step([&] {
    f.set_attr("format", std::string("rewarm-checkpoint"));
    f.set_attr("format_version", std::int64_t(1));
    f.set_attr("step", std::int64_t(h.state.step));
    f.set_attr("tokens_seen", std::int64_t(h.state.tokens_seen));
    f.set_attr("config", h.config_text);
    f.set_attr("model_config", h.model.to_hf_json().dump(2));
    f.set_attr("world_size", std::int64_t(h.world_size));
  });
  const ParamLayout layout(h.model);
  const bool opt = part.exp_avg != nullptr;
  for (const auto& e : layout.entries) {
    // This part's elements of the tensor: [lo, hi) of the flat state.
    const Index lo = std::max(e.offset, part.offset), hi = std::min(e.offset + e.size(), part.offset + part.count);
    const Index first = std::max<Index>(lo - e.offset, 0), count = std::max<Index>(hi - lo, 0);
    auto tensor = [&](const std::string& group, const float* data) {
      step([&] {
        f.write_checksummed_part(group + e.name, e.shape, first, count, count ? data + (lo - part.offset) : data);
      });
    };
    tensor("/model/", part.params);
    if (!opt) continue;
    tensor("/optimizer/exp_avg/", part.exp_avg);
    tensor("/optimizer/exp_avg_sq/", part.exp_avg_sq);
  }
  const std::int64_t st[3] = {h.state.step, h.state.tokens_seen, h.state.samples_seen};
  const std::int64_t n = part.state ? 1 : 0;
  step([&] { f.write_checksummed_part("/state/step", {1}, 0, n, &st[0]); });
  step([&] { f.write_checksummed_part("/state/tokens_seen", {1}, 0, n, &st[1]); });
  step([&] { f.write_checksummed_part("/state/samples_seen", {1}, 0, n, &st[2]); });
  const auto sets = std::int64_t(h.state.set_samples.size());
  if (sets) {
    step([&] {
      f.write_checksummed_part("/state/set_samples", {sets}, 0, part.state ? sets : 0, h.state.set_samples.data());
    });
    auto origin = h.state.set_samples_origin;
    origin.resize(std::size_t(sets), 0);
    step([&] { f.write_checksummed_part("/state/set_samples_origin", {sets}, 0, part.state ? sets : 0, origin.data()); });
  }
  write_tokenizer(f, h.tokenizer, part.state, step);
}

void write_checkpoint(const std::string& path, const CheckpointData& c) {
  AtomicFile out(path);
  {
    h5::File f(out.tmp(), h5::File::Create);
    FlatPart all;
    all.count = ParamLayout(c.model).total;
    all.params = c.params.data();
    if (!c.exp_avg.empty()) all.exp_avg = c.exp_avg.data(), all.exp_avg_sq = c.exp_avg_sq.data();
    write_checkpoint_contents(f, c, all, [](const std::function<void()>& write) { write(); });
    f.flush();
    f.close();  // a failure here (a full disk) is reported, not left to the destructor
  }
  out.commit();
}

CheckpointReader::CheckpointReader(const std::string& path, const ModelConfig* expect)
    : path_(path), file_(std::make_unique<h5::File>(path, h5::File::ReadOnly, "a rewarm checkpoint")) {
  const auto& f = *file_;
  if (!f.has_attr("format") || f.attr_string("format") != "rewarm-checkpoint")
    fail(path, "not a rewarm checkpoint (root attribute format != \"rewarm-checkpoint\")");
  model_ = ModelConfig::from_hf_json(
      parse_json(f.attr_string("model_config"), path, "attribute model_config is not JSON"), path);
  config_text_ = f.has_attr("config") ? f.attr_string("config") : "";
  world_size_ = f.has_attr("world_size") ? int(f.attr_int("world_size")) : 1;
  state_.step = f.attr_int("step");
  state_.tokens_seen = f.attr_int("tokens_seen");
  state_.samples_seen = f.exists("/state/samples_seen") ? f.read<std::int64_t>("/state/samples_seen").at(0) : 0;
  if (f.exists("/state/set_samples")) state_.set_samples = f.read<std::int64_t>("/state/set_samples");
  if (f.exists("/state/set_samples_origin"))
    state_.set_samples_origin = f.read<std::int64_t>("/state/set_samples_origin");
  if (expect) model_ = *expect;
  has_optimizer_ = f.exists("/optimizer/exp_avg");
  std::vector<std::string> groups{"/model/"};
  if (has_optimizer_) groups.insert(groups.end(), {"/optimizer/exp_avg/", "/optimizer/exp_avg_sq/"});
  for (const auto& e : ParamLayout(model_).entries)
    for (const auto& g : groups) {
      const std::string name = g + e.name;
      if (!f.exists(name)) fail(path, "missing tensor " + name);
      const auto shape = f.shape(name);
      if (shape != e.shape)
        fail(path, name + " has shape " + shape_str(shape) + " but the model config needs " + shape_str(e.shape));
      checksummed_ = checksummed_ && f.has_checksum(name);
    }
}

CheckpointReader::~CheckpointReader() = default;

std::string CheckpointReader::tokenizer() const { return read_tokenizer(*file_); }

void CheckpointReader::read_group(const std::string& group, Index offset, Index count, float* into) const {
  for (const auto& e : ParamLayout(model_).entries) {
    const Index lo = std::max(e.offset, offset), hi = std::min(e.offset + e.size(), offset + count);
    if (lo < hi) file_->read_part(group + e.name, lo - e.offset, hi - lo, into + (lo - offset));
  }
}

void CheckpointReader::read_params(float* params) const { read_params_part(0, ParamLayout(model_).total, params); }

void CheckpointReader::read_params_part(Index offset, Index count, float* params) const {
  read_group("/model/", offset, count, params);
}

void CheckpointReader::read_moments(float* exp_avg, float* exp_avg_sq) const {
  read_moments_part(0, ParamLayout(model_).total, exp_avg, exp_avg_sq);
}

void CheckpointReader::read_moments_part(Index offset, Index count, float* exp_avg, float* exp_avg_sq) const {
  if (!has_optimizer_) fail(path_, "has no optimizer state (/optimizer): use init.load = \"weights\"");
  read_group("/optimizer/exp_avg/", offset, count, exp_avg);
  read_group("/optimizer/exp_avg_sq/", offset, count, exp_avg_sq);
}

CheckpointData read_checkpoint(const std::string& path, const ModelConfig* expect, bool need_optimizer) {
  const CheckpointReader r(path, expect);
  if (need_optimizer && !r.has_optimizer())
    fail(path, "has no optimizer state (/optimizer): use init.load = \"weights\"");
  CheckpointData c;
  c.model = r.model();
  c.config_text = r.config_text();
  c.world_size = r.world_size();
  c.state = r.state();
  const std::size_t n = std::size_t(ParamLayout(c.model).total);
  c.params.assign(n, 0.0f);
  r.read_params(c.params.data());
  if (r.has_optimizer()) {
    c.exp_avg.assign(n, 0.0f), c.exp_avg_sq.assign(n, 0.0f);
    r.read_moments(c.exp_avg.data(), c.exp_avg_sq.data());
  }
  return c;
}

std::string unverified_note(const CheckpointReader& r) {
  return r.path() + " has no checksums (written before rewarm stored them): loaded unverified";
}

std::string checkpoint_path(const std::string& run_dir, Index step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld.h5", static_cast<long long>(step));
  return (fs::path(run_dir) / "checkpoints" / name).string();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> out;
  const auto dir = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(dir)) return out;
  static const std::regex pattern("step_[0-9]{8,}\\.h5");
  for (const auto& e : fs::directory_iterator(dir))
    if (std::regex_match(e.path().filename().string(), pattern)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {  // by step number
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  return out;
}

Index checkpoint_step(const std::string& path) {
  static const std::regex pattern("step_([0-9]{8,})\\.h5");
  std::smatch m;
  const std::string name = fs::path(path).filename().string();
  return std::regex_match(name, m, pattern) ? std::stoll(m[1]) : -1;
}

}  // namespace rewarm
