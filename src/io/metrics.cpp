#include "io/metrics.hpp"

#include <cmath>
#include <filesystem>

#include "core/version.hpp"
#include "io/atomic_file.hpp"
#include "io/hdf5.hpp"

namespace rewarm {

Metrics::Metrics(const std::string& path, const std::string& config_text, const Run& run, Index keep_through_step)
    : path_(path), config_(config_text), run_(run) {
  if (std::filesystem::exists(path) && keep_through_step >= 0) {
    h5::File f(path, h5::File::ReadOnly);
    std::vector<std::string> names;
    if (f.exists("/train")) names.push_back("train");
    for (const auto& set : f.list("/eval")) names.push_back("eval/" + set);
    for (const auto& g : names) {
      Series s;
      s.step = f.read<std::int64_t>("/" + g + "/step");
      s.tokens = f.read<std::int64_t>("/" + g + "/tokens");
      for (const auto& col : f.list("/" + g))
        if (col != "step" && col != "tokens") s.values[col] = f.read<double>("/" + g + "/" + col);
      std::size_t keep = 0;  // steps ascend: cut every column of the group at the same row
      while (keep < s.step.size() && s.step[keep] <= keep_through_step) ++keep;
      s.step.resize(keep);
      s.tokens.resize(keep);
      for (auto& [col, v] : s.values) v.resize(keep);
      groups_[g] = std::move(s);
    }
  }
  write();
}

void Metrics::write() const {
  AtomicFile out(path_);
  {
    h5::File f(out.tmp(), h5::File::Create);
    f.set_attr("format", std::string("rewarm-metrics"));
    f.set_attr("format_version", std::int64_t(1));
    f.set_attr("config", config_);
    f.set_attr("world_size", std::int64_t(run_.world_size));
    f.set_attr("device", run_.device);
    f.set_attr("precision", run_.precision);
    f.set_attr("version", std::string(REWARM_VERSION));
    for (const auto& [g, s] : groups_) {
      const std::vector<std::int64_t> n{std::int64_t(s.step.size())};
      f.write("/" + g + "/step", s.step.data(), n, 1024);
      f.write("/" + g + "/tokens", s.tokens.data(), n, 1024);
      for (const auto& [col, v] : s.values) f.write("/" + g + "/" + col, v.data(), n, 1024);
    }
  }
  out.commit();
}

void Metrics::log_train(const TrainRecord& r, const std::vector<std::pair<std::string, Index>>& set_samples) {
  auto& s = groups_["train"];
  s.step.push_back(r.step);
  s.tokens.push_back(r.tokens);
  s.values["lr"].push_back(r.lr);
  s.values["loss"].push_back(r.loss);
  s.values["grad_norm"].push_back(r.grad_norm);
  s.values["tokens_per_second"].push_back(r.tokens_per_second);
  s.values["seconds"].push_back(r.seconds);
  for (const auto& [name, n] : set_samples) s.values["samples_" + name].push_back(double(n));
  write();
}

void Metrics::log_eval(const std::string& set, Index step, Index tokens, double loss) {
  auto& s = groups_["eval/" + set];
  s.step.push_back(step);
  s.tokens.push_back(tokens);
  s.values["loss"].push_back(loss);
  s.values["perplexity"].push_back(std::exp(loss));
  write();
}

}  // namespace rewarm
