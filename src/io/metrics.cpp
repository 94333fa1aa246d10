#include "io/metrics.hpp"

#include <cmath>
#include <filesystem>

#include "core/version.hpp"
#include "io/hdf5.hpp"

namespace rewarm {

static const char* kTrainSeries[] = {"lr", "loss", "grad_norm", "tokens_per_second", "seconds"};

Metrics::Metrics(const std::string& path, const std::string& config_text, const std::string& device,
                 Index keep_through_step) {
  const bool exists = std::filesystem::exists(path);
  file_ = std::make_unique<h5::File>(path, exists ? h5::File::ReadWrite : h5::File::Create);
  file_->set_attr("format", std::string("rewarm-metrics"));
  file_->set_attr("format_version", std::int64_t(1));
  file_->set_attr("config", config_text);
  file_->set_attr("world_size", std::int64_t(1));
  file_->set_attr("device", device);
  file_->set_attr("version", std::string(REWARM_VERSION));
  truncate_group("/train", keep_through_step);
  for (const auto& set : file_->list("/eval")) truncate_group("/eval/" + set, keep_through_step);
  file_->flush();
}

Metrics::~Metrics() = default;

// Every series in a group shares the group's step column: cut them all at the same row.
void Metrics::truncate_group(const std::string& group, Index keep_through_step) {
  if (!file_->exists(group + "/step")) return;
  const auto steps = file_->read<std::int64_t>(group + "/step");
  std::int64_t keep = 0;
  while (keep < std::int64_t(steps.size()) && steps[keep] <= keep_through_step) ++keep;
  for (const auto& name : file_->list(group)) file_->truncate(group + "/" + name, keep);
}

void Metrics::log_train(const TrainRecord& r) {
  const std::int64_t step = r.step, tokens = r.tokens;
  const double values[] = {r.lr, r.loss, r.grad_norm, r.tokens_per_second, r.seconds};
  file_->append("/train/step", &step, 1);
  file_->append("/train/tokens", &tokens, 1);
  for (int i = 0; i < 5; ++i) file_->append(std::string("/train/") + kTrainSeries[i], &values[i], 1);
  file_->flush();
}

void Metrics::log_eval(const std::string& set, Index step, Index tokens, double loss) {
  const std::string g = "/eval/" + set + "/";
  const std::int64_t s = step, t = tokens;
  const double ppl = std::exp(loss);
  file_->append(g + "step", &s, 1);
  file_->append(g + "tokens", &t, 1);
  file_->append(g + "loss", &loss, 1);
  file_->append(g + "perplexity", &ppl, 1);
  file_->flush();
}

}  // namespace rewarm
