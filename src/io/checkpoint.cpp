#include "io/checkpoint.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "core/error.hpp"
#include "core/json.hpp"
#include "io/atomic_file.hpp"
#include "io/hdf5.hpp"
#include "model/param_layout.hpp"

namespace rewarm {
namespace fs = std::filesystem;

static std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string o = "[";
  for (std::size_t i = 0; i < s.size(); ++i) o += (i ? "," : "") + std::to_string(s[i]);
  return o + "]";
}

void write_checkpoint(const std::string& path, const CheckpointData& c) {
  AtomicFile out(path);
  {
    h5::File f(out.tmp(), h5::File::Create);
    f.set_attr("format", std::string("rewarm-checkpoint"));
    f.set_attr("format_version", std::int64_t(1));
    f.set_attr("step", std::int64_t(c.state.step));
    f.set_attr("tokens_seen", std::int64_t(c.state.tokens_seen));
    f.set_attr("config", c.config_text);
    f.set_attr("model_config", c.model.to_hf_json().dump(2));
    f.set_attr("world_size", std::int64_t(c.world_size));
    const ParamLayout layout(c.model);
    const bool opt = !c.exp_avg.empty();
    for (const auto& e : layout.entries) {
      f.write_checksummed("/model/" + e.name, c.params.data() + e.offset, e.shape);
      if (!opt) continue;
      f.write_checksummed("/optimizer/exp_avg/" + e.name, c.exp_avg.data() + e.offset, e.shape);
      f.write_checksummed("/optimizer/exp_avg_sq/" + e.name, c.exp_avg_sq.data() + e.offset, e.shape);
    }
    const std::int64_t st[3] = {c.state.step, c.state.tokens_seen, c.state.samples_seen};
    f.write_checksummed("/state/step", &st[0], {1});
    f.write_checksummed("/state/tokens_seen", &st[1], {1});
    f.write_checksummed("/state/samples_seen", &st[2], {1});
    if (!c.state.set_samples.empty())
      f.write_checksummed("/state/set_samples", c.state.set_samples.data(),
                          {std::int64_t(c.state.set_samples.size())});
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
  model_ = ModelConfig::from_hf_json(parse_json(f.attr_string("model_config"), path, "attribute model_config is not JSON"), path);
  config_text_ = f.has_attr("config") ? f.attr_string("config") : "";
  world_size_ = f.has_attr("world_size") ? int(f.attr_int("world_size")) : 1;
  state_.step = f.attr_int("step");
  state_.tokens_seen = f.attr_int("tokens_seen");
  state_.samples_seen = f.exists("/state/samples_seen") ? f.read<std::int64_t>("/state/samples_seen").at(0) : 0;
  if (f.exists("/state/set_samples")) state_.set_samples = f.read<std::int64_t>("/state/set_samples");
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

void CheckpointReader::read_group(const std::string& group, float* into) const {
  for (const auto& e : ParamLayout(model_).entries)
    file_->read_into(group + e.name, into + e.offset, std::size_t(e.size()));
}

void CheckpointReader::read_params(float* params) const { read_group("/model/", params); }

void CheckpointReader::read_moments(float* exp_avg, float* exp_avg_sq) const {
  if (!has_optimizer_) fail(path_, "has no optimizer state (/optimizer): use init.load = \"weights\"");
  read_group("/optimizer/exp_avg/", exp_avg);
  read_group("/optimizer/exp_avg_sq/", exp_avg_sq);
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
