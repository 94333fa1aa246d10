#include "app/train_log.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/host_threads.hpp"
#include "model/param_layout.hpp"

namespace rewarm {

TrainLog::TrainLog(const RunConfig& cfg, const Comm& comm, const CheckpointManager& writes,
                   const std::string& config_text, const Metrics::Run& run, Index resumed_step, const Start& start)
    : cfg_(cfg),
      root_(comm.root()),
      writes_(writes),
      progress_(cfg.total_steps(), training_flops_per_token(cfg.model, cfg.data.seq_len)) {
  if (root_) {
    std::printf("compute: %s\n", compute_description().c_str());
    for (const auto* line : {&start.origin, &start.attention, &start.parallel})
      if (!line->empty()) std::fprintf(stderr, "rewarm: %s%s\n", line == &start.attention ? "attention: " : "", line->c_str());
    if (cfg.optimizer.moment_warmup_steps > 0 && resumed_step < cfg.optimizer.moment_warmup_steps)
      std::fprintf(stderr, "rewarm: moment warmup: steps 1-%lld at LR 0 fill AdamW's moments and leave the weights as they are; the schedule's step 1 is step %lld\n",
                   static_cast<long long>(cfg.optimizer.moment_warmup_steps),
                   static_cast<long long>(cfg.optimizer.moment_warmup_steps + 1));
    if (!start.overlap_off.empty()) std::fprintf(stderr, "rewarm: [parallel] overlap is off: %s\n", start.overlap_off.c_str());
  }
  writes_.writing([&] {
    std::vector<std::string> train_sets, eval_sets, tasks;
    for (const auto& d : cfg_.data.train) train_sets.push_back(d.name);
    for (const auto& d : cfg_.data.eval) eval_sets.push_back(d.name);
    for (const auto& t : cfg_.data.tasks) tasks.push_back(t.name);
    metrics_ = std::make_unique<Metrics>((std::filesystem::path(cfg_.run_dir) / "metrics.h5").string(), config_text,
                                         run, resumed_step > 0 ? resumed_step : -1, train_sets, eval_sets, tasks);
  });
  start_ = std::chrono::steady_clock::now();
}

TrainLog::~TrainLog() = default;


void TrainLog::step(const TrainState& s, const StepResult& r, double seconds, bool last) {
  progress_.step_done(seconds);
  const Index t = s.step;
  if (t % cfg_.train.log_interval != 0 && !last) return;
  const double tokens = double(cfg_.tokens_per_step()), elapsed = seconds_since(start_);
  std::vector<std::pair<std::string, Index>> set_samples;
  for (std::size_t i = 0; i < cfg_.data.train.size(); ++i)
    set_samples.emplace_back(cfg_.data.train[i].name, s.set_samples[i]);
  TrainRecord rec{t, s.tokens_seen, r.lr, r.loss, r.grad_norm, tokens / seconds, elapsed};
  rec.step_seconds = seconds;
  rec.model_flops_per_second = tokens / seconds * training_flops_per_token(cfg_.model, cfg_.data.seq_len);
  writes_.writing([&] { metrics_->log_train(rec, set_samples); });
  char lr[48];  // a moment-warmup step says so where the LR goes
  if (cfg_.in_moment_warmup(t))
    std::snprintf(lr, sizeof lr, "moment warmup %lld/%lld", static_cast<long long>(t),
                  static_cast<long long>(cfg_.optimizer.moment_warmup_steps));
  else
    std::snprintf(lr, sizeof lr, "lr %.3e", r.lr);
  if (root_)
    std::printf("train step %s | loss %.9g | %s | grad_norm %.4f | %s | %s elapsed | ETA %s\n",
                progress_.step_of_total(t).c_str(), r.loss, lr, r.grad_norm, progress_.rates(tokens, seconds).c_str(),
                format_duration(elapsed).c_str(), format_duration(progress_.eta_seconds(t)).c_str());
  std::fflush(stdout);
}

void TrainLog::eval(const std::string& set, const TrainState& s, double loss, double seconds) {
  writes_.writing([&] { metrics_->log_eval(set, s.step, s.tokens_seen, loss); });
  if (root_)
    std::printf("eval  step %s | %-12s loss %.9g | ppl %.6g | %.1f s\n", progress_.step_of_total(s.step).c_str(),
                set.c_str(), loss, std::exp(loss), seconds);
  std::fflush(stdout);
}

void TrainLog::task(const std::string& name, const TrainState& s, const TaskScore& score, double seconds) {
  writes_.writing([&] { metrics_->log_task(name, s.step, s.tokens_seen, score.acc, score.acc_norm); });
  if (root_) {
    char norm[32] = "";
    if (!score.single_choice) std::snprintf(norm, sizeof norm, " | acc_norm %.4f", score.acc_norm);
    std::printf("task  step %s | %-12s acc %.4f%s | %lld examples | %.1f s\n", progress_.step_of_total(s.step).c_str(),
                name.c_str(), score.acc, norm, static_cast<long long>(score.examples), seconds);
  }
  std::fflush(stdout);
}

void TrainLog::checkpoint(Index step, const std::string& path, double seconds) {
  if (root_) std::printf("checkpoint step %lld | %s | %.1f s\n", static_cast<long long>(step), path.c_str(), seconds);
  std::fflush(stdout);
}

void TrainLog::stopped_before(Index step) {
  if (root_)
    std::printf("stopped before step %lld (signal: time limit near); rerun the same command to resume\n",
                static_cast<long long>(step));
  std::fflush(stdout);
}

void TrainLog::stopped_after(Index step, bool signal) {
  if (root_)
    std::printf("stopped after step %lld (%s); rerun the same command to resume\n", static_cast<long long>(step),
                signal ? "signal: time limit near" : "--stop-at");
  std::fflush(stdout);
}

}  // namespace rewarm
