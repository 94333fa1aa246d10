#include "io/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/error.hpp"
#include "core/version.hpp"
#include "io/atomic_file.hpp"
#include "io/hdf5.hpp"

namespace rewarm {

namespace {
// Series besides step and tokens, per kind of group.
const std::vector<std::string> kTrainSeries = {"lr",      "loss",         "grad_norm",
                                               "tokens_per_second", "seconds", "step_seconds",
                                               "model_flops_per_second"};
const std::vector<std::string> kEvalSeries = {"loss", "perplexity"};
const std::vector<std::string> kTaskSeries = {"acc", "acc_norm"};
constexpr std::int64_t kChunk = 1024;  // records per chunk: 8 KiB a series

std::vector<std::string> group_names(const h5::File& f) {
  std::vector<std::string> names;
  if (f.exists("/train")) names.push_back("train");
  for (const auto& set : f.list("/eval")) names.push_back("eval/" + set);
  if (f.exists("/tasks"))
    for (const auto& task : f.list("/tasks")) names.push_back("tasks/" + task);
  return names;
}
}  // namespace

std::map<std::string, MetricsGroup> read_metrics(const std::string& path) {
  h5::File f(path, h5::File::ReadLive, "a rewarm metrics file");
  std::map<std::string, MetricsGroup> out;
  for (const auto& g : group_names(f)) {
    MetricsGroup s;
    s.step = f.read<std::int64_t>("/" + g + "/step");
    s.tokens = f.read<std::int64_t>("/" + g + "/tokens");
    std::size_t rows = std::min(s.step.size(), s.tokens.size());
    for (const auto& col : f.list("/" + g))
      if (col != "step" && col != "tokens") {
        s.values[col] = f.read<double>("/" + g + "/" + col);
        rows = std::min(rows, s.values[col].size());
      }
    s.step.resize(rows);
    s.tokens.resize(rows);
    for (auto& [col, v] : s.values) v.resize(rows);
    out[g] = std::move(s);
  }
  return out;
}

struct Metrics::Group {
  std::unique_ptr<h5::AppendWriter<std::int64_t>> step, tokens;
  std::map<std::string, std::unique_ptr<h5::AppendWriter<double>>> values;
};

Metrics::Metrics(const std::string& path, const std::string& config_text, const Run& run, Index keep_through_step,
                 const std::vector<std::string>& train_sets, const std::vector<std::string>& eval_sets,
                 const std::vector<std::string>& tasks)
    : path_(path) {
  std::map<std::string, MetricsGroup> kept;
  if (std::filesystem::exists(path) && keep_through_step >= 0) {
    kept = read_metrics(path);
    for (auto& [g, s] : kept) {  // steps ascend: cut every series of the group at the same row
      std::size_t keep = 0;
      while (keep < s.step.size() && s.step[keep] <= keep_through_step) ++keep;
      s.step.resize(keep);
      s.tokens.resize(keep);
      for (auto& [col, v] : s.values) v.resize(keep);
    }
  }
  std::map<std::string, std::vector<std::string>> appended;  // the groups this run appends to
  appended["train"] = kTrainSeries;
  for (const auto& set : train_sets) appended["train"].push_back("samples_" + set);
  for (const auto& set : eval_sets) appended["eval/" + set] = kEvalSeries;
  for (const auto& task : tasks) appended["tasks/" + task] = kTaskSeries;
  for (const auto& [g, series] : appended) kept[g];  // every appended group exists, if empty
  {  // the kept records and every series this run appends to, in a new file
    AtomicFile out(path);
    h5::File f(out.tmp(), h5::File::Create);
    f.set_attr("format", std::string("rewarm-metrics"));
    f.set_attr("format_version", std::int64_t(1));
    f.set_attr("config", config_text);
    f.set_attr("world_size", std::int64_t(run.world_size));
    f.set_attr("device", run.device);
    f.set_attr("precision", run.precision);
    f.set_attr("attention", run.attention);
    f.set_attr("version", std::string(REWARM_VERSION));
    for (auto& [g, s] : kept) {
      const std::vector<std::int64_t> rows{std::int64_t(s.step.size())};
      // no chunk checksums: SWMR readers beside the writer would meet one mid-rewrite
      f.write("/" + g + "/step", s.step.data(), rows, kChunk, 0, false);
      f.write("/" + g + "/tokens", s.tokens.data(), rows, kChunk, 0, false);
      for (const auto& col : appended[g])  // a series new to this file has no value in the kept rows
        if (!s.values.count(col)) s.values[col].assign(s.step.size(), std::numeric_limits<double>::quiet_NaN());
      for (const auto& [col, v] : s.values) f.write("/" + g + "/" + col, v.data(), rows, kChunk, 0, false);
    }
    f.flush();
    f.close();
    out.commit();
  }
  file_ = std::make_unique<h5::File>(path, h5::File::AppendLive);
  for (const auto& [g, series] : appended) {
    auto group = std::make_unique<Group>();
    group->step = std::make_unique<h5::AppendWriter<std::int64_t>>(*file_, "/" + g + "/step");
    group->tokens = std::make_unique<h5::AppendWriter<std::int64_t>>(*file_, "/" + g + "/tokens");
    for (const auto& col : series)
      group->values[col] = std::make_unique<h5::AppendWriter<double>>(*file_, "/" + g + "/" + col);
    groups_[g] = std::move(group);
  }
}

Metrics::~Metrics() {
  try {
    if (file_) file_->close();
  } catch (const Error&) {  // the write that failed has been reported already
  }
}

// One row: every series, step last, then the flush that makes it durable and visible.
void Metrics::append(Group& g, Index step, Index tokens, const std::vector<double>& values) {
  std::size_t i = 0;
  for (auto& [col, w] : g.values) w->append(&values.at(i++), 1);
  const std::int64_t t = tokens, s = step;
  g.tokens->append(&t, 1);
  g.step->append(&s, 1);
  file_->flush();
}

void Metrics::log_train(const TrainRecord& r, const std::vector<std::pair<std::string, Index>>& set_samples) {
  auto& g = *groups_.at("train");
  std::map<std::string, double> row{{"lr", r.lr},
                                    {"loss", r.loss},
                                    {"grad_norm", r.grad_norm},
                                    {"tokens_per_second", r.tokens_per_second},
                                    {"seconds", r.seconds},
                                    {"step_seconds", r.step_seconds},
                                    {"model_flops_per_second", r.model_flops_per_second}};
  for (const auto& [name, n] : set_samples) row["samples_" + name] = double(n);
  std::vector<double> values;
  for (const auto& [col, w] : g.values) {
    const auto it = row.find(col);
    values.push_back(it == row.end() ? std::numeric_limits<double>::quiet_NaN() : it->second);
  }
  append(g, r.step, r.tokens, values);
}

void Metrics::log_eval(const std::string& set, Index step, Index tokens, double loss) {
  const auto it = groups_.find("eval/" + set);
  if (it == groups_.end()) fail(path_, "no eval set '" + set + "' was declared when the file was opened");
  append(*it->second, step, tokens, {loss, std::exp(loss)});  // the series in name order: loss, perplexity
}

void Metrics::log_task(const std::string& task, Index step, Index tokens, double acc, double acc_norm) {
  const auto it = groups_.find("tasks/" + task);
  if (it == groups_.end()) fail(path_, "no task '" + task + "' was declared when the file was opened");
  append(*it->second, step, tokens, {acc, acc_norm});  // in name order
}

}  // namespace rewarm
