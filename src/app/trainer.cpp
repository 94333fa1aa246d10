#include "app/trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "io/metrics.hpp"
#include "optim/adamw.hpp"

namespace rewarm {
namespace fs = std::filesystem;

std::string device_description() {
  return std::string(ExecSpace::name()) + " x" + std::to_string(ExecSpace().concurrency());
}

template <class V>
static void upload(const V& dst, const std::vector<float>& src) {
  auto h = Kokkos::create_mirror_view(dst);
  for (std::size_t i = 0; i < src.size(); ++i) h(i) = src[i];
  Kokkos::deep_copy(dst, h);
}
template <class V>
static std::vector<float> download(const V& src) {
  auto h = host_copy(src);
  return std::vector<float>(h.data(), h.data() + h.extent(0));
}

// A [model] table given beside a checkpoint must describe the checkpoint's model exactly.
static void check_architecture(const RunConfig& cfg, const ModelConfig& checkpoint, const std::string& path) {
  std::string diffs;
  for (const auto& d : cfg.model.differences(checkpoint))
    diffs += (diffs.empty() ? "" : ", ") + ("model." + d.key + " = " + d.ours + " but the checkpoint has " + d.theirs);
  if (!diffs.empty())
    fail(cfg.source, diffs + " (" + path + "); leave out [model] to take the checkpoint's architecture");
}

Trainer::Trainer(RunConfig cfg, const std::string& weights) : cfg_(std::move(cfg)) {
  // Where the weights come from: the newest checkpoint of this run (exact resume), an explicit
  // checkpoint (eval), init.from, or a seeded random init.
  const bool may_resume = weights.empty() && !cfg_.run_dir.empty();  // bench and eval resume nothing
  const auto existing = may_resume ? list_checkpoints(cfg_.run_dir) : std::vector<std::string>{};
  std::string from = !weights.empty() ? weights : !existing.empty() ? existing.back() : cfg_.init.from;
  const bool resume = !existing.empty();
  const bool full = resume || (weights.empty() && cfg_.init.load == "full");
  CheckpointData ck;
  if (from == "random" && !cfg_.model_given)
    fail(cfg_.source, "a [model] table is required when init.from = \"random\"");
  if (from != "random") {
    ck = read_checkpoint(from, nullptr, full);
    if (cfg_.model_given) check_architecture(cfg_, ck.model, from);
    cfg_.model = ck.model;
    cfg_.validate_model();
    if (full) state_ = ck.state;
  }
  config_text_ = cfg_.to_toml();
  if (resume) {  // the same run, or nothing: only keys that leave the trajectory alone may change
    std::string changed;
    for (const auto& c : changes_refused_on_resume(ck.config_text, config_text_)) changed += (changed.empty() ? "" : ", ") + c;
    if (!changed.empty()) {
      std::string allowed;
      for (const auto& k : resume_may_change()) allowed += (allowed.empty() ? "" : ", ") + k;
      fail(cfg_.source, "resuming " + from + " with a changed config: " + changed + ". A resumed run may change only " +
                            allowed + "; start another run_dir for another run");
    }
  }
  if (from != "random")
    origin_ = std::string(resume ? "resuming from " : "weights from ") + from + " (step " +
              std::to_string(ck.state.step) + ")";
  model_ = std::make_unique<Gpt<float>>(cfg_.model, cfg_.data.micro_batch, cfg_.data.seq_len);
  exp_avg_ = View1<float>("rewarm::exp_avg", model_->params.extent(0));
  exp_avg_sq_ = View1<float>("rewarm::exp_avg_sq", model_->params.extent(0));
  if (from == "random") {
    model_->init_random(cfg_.init.seed, cfg_.init.std);
  } else {
    upload(model_->params, ck.params);
    if (full) upload(exp_avg_, ck.exp_avg), upload(exp_avg_sq_, ck.exp_avg_sq);
  }
  const Index n = cfg_.data.micro_batch * cfg_.data.seq_len;
  ids_ = View1<std::int32_t>("rewarm::ids", n);
  targets_ = View1<std::int32_t>("rewarm::targets", n);
  h_ids_ = Kokkos::create_mirror_view(PinnedSpace(), ids_);
  h_targets_ = Kokkos::create_mirror_view(PinnedSpace(), targets_);
  window_.resize(cfg_.data.seq_len + 1);
}

// Row j of the batch: inputs are the window's first seq_len tokens, targets its last seq_len.
void Trainer::stage_window(Index j) {
  const Index T = cfg_.data.seq_len;
  for (Index t = 0; t < T; ++t) {
    h_ids_(j * T + t) = window_[t];
    h_targets_(j * T + t) = window_[t + 1];
  }
}

// Enqueued on the execution space's stream, so the host goes on reading. The host batch is
// rewritten only after the forward pass that reads this upload has returned its loss to the
// host, which orders the copy before the rewrite.
void Trainer::upload_batch() {
  Kokkos::deep_copy(ExecSpace(), ids_, h_ids_);
  Kokkos::deep_copy(ExecSpace(), targets_, h_targets_);
}

void Trainer::load_batch() {
  for (Index j = 0; j < cfg_.data.micro_batch; ++j) {
    mixture_->next(window_.data());
    stage_window(j);
  }
}

// Windows to evaluate in eval set i: its first max_sequences (all when 0).
static Index eval_windows(const DataSet& set, const TokenShard& shard, Index seq_len) {
  const Index n = shard.num_windows(seq_len);
  return set.max_sequences > 0 ? std::min(n, set.max_sequences) : n;
}

void Trainer::open_eval_data() {
  eval_shards_.clear();
  const Index T = cfg_.data.seq_len;
  for (std::size_t i = 0; i < cfg_.data.eval.size(); ++i) {
    const auto& set = cfg_.data.eval[i];
    const std::string role = "data.eval[" + std::to_string(i) + "]";
    eval_shards_.push_back(std::make_unique<TokenShard>(set.path));
    const auto& shard = *eval_shards_.back();
    shard.require(T, cfg_.model.vocab_size, role);
    if (set.max_sequences > shard.num_windows(T))
      fail(set.path, role + ".max_sequences = " + std::to_string(set.max_sequences) + " but the shard has only " +
                         std::to_string(shard.num_windows(T)) + " windows at seq_len " + std::to_string(T));
  }
}

double Trainer::eval_set(std::size_t i) {
  const auto& shard = *eval_shards_.at(i);
  const Index T = cfg_.data.seq_len, B = cfg_.data.micro_batch;
  const Index n = eval_windows(cfg_.data.eval[i], shard, T);
  double total = 0;
  for (Index first = 0; first < n; first += B) {
    const Index rows = std::min(B, n - first);
    for (Index j = 0; j < B; ++j) {  // a short last batch repeats its last window; only `rows` count
      shard.read_window(first + std::min(j, rows - 1), T, cfg_.model.vocab_size, window_.data());
      stage_window(j);
    }
    upload_batch();
    total += model_->forward(ids_, targets_, 0, rows * T);
  }
  return total / double(n * T);
}

std::map<std::string, double> Trainer::evaluate() {
  if (eval_shards_.size() != cfg_.data.eval.size()) open_eval_data();
  std::map<std::string, double> out;
  for (std::size_t i = 0; i < cfg_.data.eval.size(); ++i) out[cfg_.data.eval[i].name] = eval_set(i);
  return out;
}

void Trainer::check_run_dir() const {
  const auto dir = fs::path(cfg_.run_dir) / "checkpoints";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(cfg_.run_dir, "cannot create run_dir/checkpoints: " + ec.message());
  const auto probe = dir / ".rewarm-write-test";
  if (!std::ofstream(probe).put('x')) fail(cfg_.run_dir, "run_dir/checkpoints is not writable");
  fs::remove(probe, ec);
}

void Trainer::save_checkpoint() {
  fs::create_directories(fs::path(cfg_.run_dir) / "checkpoints");
  CheckpointData c;
  c.model = cfg_.model;
  c.config_text = config_text_;
  c.state = state_;
  c.params = download(model_->params);
  c.exp_avg = download(exp_avg_);
  c.exp_avg_sq = download(exp_avg_sq_);
  write_checkpoint(checkpoint_path(cfg_.run_dir, state_.step), c);
  auto all = list_checkpoints(cfg_.run_dir);
  const std::size_t keep = std::size_t(std::max<Index>(cfg_.train.keep_checkpoints, 1));
  for (std::size_t i = 0; i + keep < all.size(); ++i) fs::remove(all[i]);
}

void Trainer::open_train_data() {
  mixture_ = std::make_unique<Mixture>(cfg_.data.train, cfg_.data.seq_len, cfg_.data.shuffle, cfg_.data.seed,
                                       cfg_.model.vocab_size);
  auto counts = state_.set_samples;
  if (counts.empty()) counts.assign(cfg_.data.train.size(), 0);
  Index total = 0;
  for (Index c : counts) total += c;
  if (counts.size() != cfg_.data.train.size() || total != state_.samples_seen)
    fail(cfg_.source, "[[data.train]] has " + std::to_string(cfg_.data.train.size()) +
                          " sets but the checkpoint's data position is for " + std::to_string(counts.size()) +
                          ": a resumed run needs the same training sets");
  mixture_->set_counts(counts);
}

StepResult Trainer::step() {
  const Index t = state_.step + 1, accum = cfg_.accumulation_steps();
  const double grad_scale = 1.0 / double(cfg_.tokens_per_step());
  StepResult r{};
  model_->zero_grads();
  double loss_sum = 0;
  for (Index u = 0; u < accum; ++u) {
    const auto d0 = std::chrono::steady_clock::now();
    load_batch();  // host reads alone: the device may still be computing
    r.data_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - d0).count();
    upload_batch();
    loss_sum += model_->forward(ids_, targets_, grad_scale);
  }
  r.loss = loss_sum * grad_scale;
  r.grad_norm = global_norm(model_->grads);
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm))  // before the update: nothing bad is saved
    fail(cfg_.run_dir, std::string(std::isfinite(r.loss) ? "gradient norm" : "loss") + " became " +
                           (std::isnan(r.loss) || std::isnan(r.grad_norm) ? "NaN" : "infinite") + " at step " +
                           std::to_string(t) + "; stopped, earlier checkpoints are kept");
  clip_by_global_norm(model_->grads, r.grad_norm, cfg_.optimizer.grad_clip);
  r.lr = cfg_.lr_at(t);
  adamw_step(model_->params, model_->grads, exp_avg_, exp_avg_sq_, model_->layout().decay_end, cfg_.optimizer, r.lr, t);
  kx::fence("rewarm::step");  // the step is done when the timer is read
  state_.step = t;
  state_.samples_seen += cfg_.data.global_batch;
  state_.set_samples = mixture_->counts();
  state_.tokens_seen += cfg_.tokens_per_step();
  return r;
}

void Trainer::train(Index stop_at) {
  if (stop_at != -1 && stop_at <= state_.step)
    fail("--stop-at " + std::to_string(stop_at),
         state_.step > 0 ? "is not after step " + std::to_string(state_.step) + ", where this run resumes"
                         : "must be a step >= 1");
  // everything the run touches, before any work
  open_train_data();
  open_eval_data();
  check_run_dir();
  if (!origin_.empty()) std::fprintf(stderr, "rewarm: %s\n", origin_.c_str());
  const bool resumed = state_.step > 0;
  Metrics metrics((fs::path(cfg_.run_dir) / "metrics.h5").string(), config_text_, device_description(),
                  resumed ? state_.step : -1);
  auto run_eval = [&] {
    for (std::size_t i = 0; i < cfg_.data.eval.size(); ++i) {
      const auto& name = cfg_.data.eval[i].name;
      const double loss = eval_set(i);
      metrics.log_eval(name, state_.step, state_.tokens_seen, loss);
      std::printf("eval  step %6lld | %-12s loss %.9g | ppl %.6g\n", static_cast<long long>(state_.step),
                  name.c_str(), loss, std::exp(loss));
    }
    std::fflush(stdout);
  };
  if (!resumed && cfg_.train.eval_at_start) run_eval();

  const auto t_start = std::chrono::steady_clock::now();
  while (state_.step < cfg_.schedule.total_steps) {
    const auto t0 = std::chrono::steady_clock::now();
    const StepResult r = step();
    const Index t = state_.step;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (t % cfg_.train.log_interval == 0 || t == cfg_.schedule.total_steps) {
      const double tps = double(cfg_.tokens_per_step()) / secs;
      std::vector<std::pair<std::string, Index>> set_samples;
      for (std::size_t i = 0; i < cfg_.data.train.size(); ++i)
        set_samples.emplace_back(cfg_.data.train[i].name, state_.set_samples[i]);
      metrics.log_train({t, state_.tokens_seen, r.lr, r.loss, r.grad_norm, tps,
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count()},
                        set_samples);
      std::printf("train step %6lld | loss %.9g | lr %.3e | grad_norm %.4f | %.0f tok/s\n", static_cast<long long>(t),
                  r.loss, r.lr, r.grad_norm, tps);
      std::fflush(stdout);
    }
    if (cfg_.train.eval_interval > 0 && (t % cfg_.train.eval_interval == 0 || t == cfg_.schedule.total_steps))
      run_eval();
    if ((cfg_.train.checkpoint_interval > 0 && t % cfg_.train.checkpoint_interval == 0) ||
        t == cfg_.schedule.total_steps || t == stop_at)
      save_checkpoint();
    if (t == stop_at) {
      std::printf("stopped after step %lld (--stop-at); rerun the same command to resume\n", static_cast<long long>(t));
      return;
    }
  }
}

}  // namespace rewarm
