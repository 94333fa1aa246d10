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
      f.write("/model/" + e.name, c.params.data() + e.offset, e.shape);
      if (!opt) continue;
      f.write("/optimizer/exp_avg/" + e.name, c.exp_avg.data() + e.offset, e.shape);
      f.write("/optimizer/exp_avg_sq/" + e.name, c.exp_avg_sq.data() + e.offset, e.shape);
    }
    const std::int64_t st[3] = {c.state.step, c.state.tokens_seen, c.state.samples_seen};
    f.write("/state/step", &st[0], {1});
    f.write("/state/tokens_seen", &st[1], {1});
    f.write("/state/samples_seen", &st[2], {1});
    if (!c.state.set_samples.empty())
      f.write("/state/set_samples", c.state.set_samples.data(), {std::int64_t(c.state.set_samples.size())});
    f.flush();
  }
  out.commit();
}

CheckpointData read_checkpoint(const std::string& path, const ModelConfig* expect, bool need_optimizer) {
  h5::File f(path, h5::File::ReadOnly);
  if (!f.has_attr("format") || f.attr_string("format") != "rewarm-checkpoint")
    fail(path, "not a rewarm checkpoint (root attribute format != \"rewarm-checkpoint\")");
  CheckpointData c;
  c.model = ModelConfig::from_hf_json(parse_json(f.attr_string("model_config"), path, "attribute model_config is not JSON"), path);
  c.config_text = f.has_attr("config") ? f.attr_string("config") : "";
  c.world_size = f.has_attr("world_size") ? int(f.attr_int("world_size")) : 1;
  c.state.step = f.attr_int("step");
  c.state.tokens_seen = f.attr_int("tokens_seen");
  c.state.samples_seen = f.exists("/state/samples_seen") ? f.read<std::int64_t>("/state/samples_seen").at(0) : 0;
  if (f.exists("/state/set_samples")) c.state.set_samples = f.read<std::int64_t>("/state/set_samples");
  const ParamLayout layout(expect ? *expect : c.model);
  const bool opt = f.exists("/optimizer/exp_avg");
  if (need_optimizer && !opt) fail(path, "has no optimizer state (/optimizer): use init.load = \"weights\"");
  c.params.assign(layout.total, 0.0f);
  if (opt) c.exp_avg.assign(layout.total, 0.0f), c.exp_avg_sq.assign(layout.total, 0.0f);
  for (const auto& e : layout.entries) {
    auto load = [&](const std::string& name, std::vector<float>& into) {
      if (!f.exists(name)) fail(path, "missing tensor " + name);
      const auto shape = f.shape(name);
      if (shape != e.shape)
        fail(path, name + " has shape " + shape_str(shape) + " but the model config needs " + shape_str(e.shape));
      const auto v = f.read<float>(name);
      std::copy(v.begin(), v.end(), into.begin() + e.offset);
    };
    load("/model/" + e.name, c.params);
    if (opt) {
      load("/optimizer/exp_avg/" + e.name, c.exp_avg);
      load("/optimizer/exp_avg_sq/" + e.name, c.exp_avg_sq);
    }
  }
  if (expect) c.model = *expect;
  return c;
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

}  // namespace rewarm
