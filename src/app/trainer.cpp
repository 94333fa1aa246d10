#include "app/trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <new>
#include <regex>

#include "app/memory_plan.hpp"
#include "app/progress.hpp"
#include "app/stop_signals.hpp"
#include "core/device.hpp"
#include "core/error.hpp"
#include "core/host_memory.hpp"
#include "io/run_dir_lock.hpp"
#include "io/stored_tokenizer.hpp"
#include "optim/adamw.hpp"

namespace rewarm {

std::string device_description() {
  return std::string(ExecSpace::name()) + " x" + std::to_string(ExecSpace().concurrency());
}


// A [model] table given beside a checkpoint must describe the checkpoint's model exactly.
static void check_architecture(const RunConfig& cfg, const ModelConfig& checkpoint, const std::string& path) {
  std::vector<std::string> diffs;
  for (const auto& d : cfg.model.differences(checkpoint))
    diffs.push_back("model." + d.key + " = " + d.ours + " but the checkpoint has " + d.theirs);
  if (!diffs.empty())
    fail(cfg.source, join(diffs) + " (" + path + "); leave out [model] to take the checkpoint's architecture");
}

// The start is ordered so that everything cheap is checked before anything costly, and nothing
// is written before the inputs are known good: the config (by the caller), the checkpoint the
// weights come from (its header and tensor shapes, not its tensors), every data set, the run_dir
// (locked before anything in it is read), the memory estimate; only then are the model and its
// state allocated and the weights read. A fresh run checks its inputs before it creates its
// run_dir; a resumed one (its run_dir has checkpoints) takes the lock first, then reads them.
Trainer::Trainer(RunConfig cfg, Comm& comm, Purpose purpose, const std::string& weights)
    : cfg_(std::move(cfg)), comm_(comm), checkpoints_(cfg_, comm) {
  const bool train = purpose == Purpose::train;
  const bool resuming = train && !list_checkpoints(cfg_.run_dir).empty();  // a look; read under the lock
  std::unique_ptr<CheckpointReader> ck;  // where the weights come from; none: a seeded random init
  bool model_known = cfg_.model_given;   // from [model], or from a checkpoint read before
  auto take_model_from = [&](const std::string& path) {
    ck = std::make_unique<CheckpointReader>(path);
    if (model_known) check_architecture(cfg_, ck->model(), path);
    cfg_.model = ck->model();
    cfg_.validate_model();
    model_known = true;
  };
  auto open_data = [&] {  // the model is known: the data sets, then whether it all fits
    if (purpose != Purpose::eval) open_train_data();
    if (purpose != Purpose::bench) eval_ = std::make_unique<Evaluation>(cfg_);
    if (purpose != Purpose::bench) tasks_ = std::make_unique<TaskEvaluation>(cfg_);
    attention_ = choose_attention(
        cfg_.precision.attention, gemm_precision(cfg_.precision.gemm, cfg_.source),
        {cfg_.data.micro_batch, cfg_.data.seq_len, cfg_.model.num_attention_heads, cfg_.model.head_dim()}, cfg_.source);
    const Footprint fit = footprint(resuming || (weights.empty() && cfg_.init.load == InitLoad::full));
    const auto short_of = memory_problem(fit.need, memory_budget());
    if (!short_of.empty()) fail(cfg_.source, fit.what + ": " + short_of + fit.advice);
  };
  if (!resuming) {  // the weights the config names: eval's checkpoint or init.from
    const std::string named = !weights.empty() ? weights : cfg_.init.from;
    if (named != "random") take_model_from(named);
    if (!ck && !cfg_.model_given) fail(cfg_.source, "a [model] table is required when init.from = \"random\"");
    open_data();
  }
  bool resume = false;
  if (train) {  // the run's own directory, locked by rank 0 before any rank reads it
    comm_.agree([&] {
      if (!comm_.root()) return;
      std::string note;
      lock_ = std::make_unique<RunDirLock>(cfg_.run_dir, lock_stale_seconds(), &note);
      if (!note.empty()) std::fprintf(stderr, "rewarm: %s\n", note.c_str());
      checkpoints_.check_dir();
    });
    const auto existing = list_checkpoints(cfg_.run_dir);
    if (!existing.empty()) {  // its newest checkpoint continues the run exactly
      resume = true;
      take_model_from(existing.back());
      checkpoints_.resumed_from(ck->state().step, existing.back());
    }
    if (resuming && !resume) fail(cfg_.run_dir, "its checkpoints were removed while this run started: start it again");
    if (resuming) open_data();
  }
  const bool full = resume || (weights.empty() && cfg_.init.load == InitLoad::full);
  if (ck) {
    if (full && !ck->has_optimizer())
      fail(ck->path(), "has no optimizer state (/optimizer): use init.load = \"weights\"");
    if (full) state_ = ck->state();
    if (!ck->checksummed() && comm_.root()) std::fprintf(stderr, "rewarm: note: %s\n", unverified_note(*ck).c_str());
    origin_ = std::string(resume ? "resuming from " : "weights from ") + ck->path() + " (step " +
              std::to_string(ck->state().step) + ")";
  }
  if (mixture_) set_train_position(full && !resume && ck ? ck->config_text() : "");
  if (train) {  // carried into every checkpoint, for a complete `convert to-hf`
    tokenizer_ = ck ? ck->tokenizer() : "";
    if (tokenizer_.empty()) tokenizer_ = read_tokenizer(cfg_.data.train.front().path);
  }
  config_text_ = cfg_.to_toml();
  if (resume) {  // the same run, or nothing: only keys that leave the trajectory alone may change
    const auto changed = changes_refused_on_resume(ck->config_text(), config_text_);
    if (!changed.empty())
      fail(cfg_.source, "resuming " + ck->path() + " with a changed config: " + join(changed) +
                            ". A resumed run may change only " + join(resume_may_change()) +
                            "; start another run_dir for another run");
  }

  allocate(footprint(full));
  dp_->attach(*model_);  // collective (NCCL/RCCL's bootstrap): after the allocations, as the estimate assumed
  {  // the parameters this rank holds (zero 3: its slice), from the checkpoint, each tensor verified on
     // the way, or from the seeded stream; straight into the buffers (their host mirrors on a GPU)
    const auto held = dp_->held_params();
    auto h = Kokkos::create_mirror_view(held);
    if (ck)
      ck->read_params_part(dp_->held_offset(), Index(held.extent(0)), h.data());
    else
      init_random_part(model_->layout(), cfg_.init.seed, cfg_.init.std, dp_->held_offset(), Index(held.extent(0)),
                       h.data());
    Kokkos::deep_copy(held, h);
    dp_->params_written();
  }
  if (ck && full) {  // ZeRO: this rank's slice of the moments only
    auto h_m = Kokkos::create_mirror_view(exp_avg_), h_v = Kokkos::create_mirror_view(exp_avg_sq_);
    ck->read_moments_part(dp_->owned_offset(), dp_->owned_count(), h_m.data(), h_v.data());
    Kokkos::deep_copy(exp_avg_, h_m);
    Kokkos::deep_copy(exp_avg_sq_, h_v);
  }
}

// The model, the strategy's buffers, the moments and the batch; an allocation that fails all the
// same is one line too, not Kokkos' traceback.
void Trainer::allocate(const Footprint& fit) {
  try {
    model_ = std::make_unique<Gpt<float>>(cfg_.model, cfg_.data.micro_batch, cfg_.data.seq_len, fit.options);
    dp_ = std::make_unique<DataParallel>(cfg_, comm_, model_->layout(), fit.options.gemm == GemmPrecision::bf16);
    exp_avg_ = View1<float>("rewarm::exp_avg", dp_->owned_count());
    exp_avg_sq_ = View1<float>("rewarm::exp_avg_sq", dp_->owned_count());
    batch_ = std::make_unique<DeviceBatch>(cfg_.data.micro_batch, cfg_.data.seq_len);
  } catch (const std::exception& e) {
    const std::string kokkos = e.what();
    if (kokkos.find("alloc") == std::string::npos && !dynamic_cast<const std::bad_alloc*>(&e)) throw;
    std::smatch m;
    const std::string which =
        std::regex_search(kokkos, m, std::regex("label \"([^\"]+)\"")) ? " (" + m[1].str() + ")" : "";
    fail(cfg_.source, "out of memory allocating " + fit.what + which + ": estimated " + gib(fit.need) + ", " +
                          gib(double(memory_budget().free)) + " free now" + fit.advice);
  }
}

Trainer::~Trainer() = default;

// Everything this rank allocates, estimated exactly (a test holds Gpt::memory_bytes to the
// allocations): checked against where it computes before anything is allocated.
Trainer::Footprint Trainer::footprint(bool full) const {
  Footprint f;
  f.options = rewarm::model_options(cfg_, attention_.fused);
  const Index P = ParamLayout(cfg_.model).total;
  f.need = double(rank_memory(cfg_, comm_.size(), comm_.rank(), f.options).total());
  if (kHostMemory) {  // the ranks of a node share its memory; ZeRO-1 reads whole moments, then keeps its slice
    if (full && cfg_.parallel.zero) f.need += 8.0 * double(P);
    f.need *= comm_.local_size();
  }
  f.what = "the model (" + std::to_string(P) + " parameters, micro_batch " + std::to_string(cfg_.data.micro_batch) +
           " × seq_len " + std::to_string(cfg_.data.seq_len) + ") and its training state" +
           (kHostMemory && comm_.local_size() > 1 ? " on " + std::to_string(comm_.local_size()) + " ranks of this node"
                                                  : "");
  f.advice = std::string(f.options.recompute == Recompute::full ? ";" : "; set [memory] recompute = \"full\",") +
             " lower data.micro_batch, or use [parallel] zero = 1, 2 or 3 over several " +
             std::string(kHostMemory ? "nodes" : "GPUs");
  return f;
}

void Trainer::open_train_data() {
  const Index G = cfg_.data.global_batch, mb = cfg_.data.micro_batch, N = comm_.size();
  if (G % (mb * N) != 0)
    fail(cfg_.source, "data.global_batch = " + std::to_string(G) + " is not a multiple of data.micro_batch × ranks = " +
                          std::to_string(mb) + " × " + std::to_string(N) + " = " + std::to_string(mb * N));
  mixture_ = std::make_unique<Mixture>(cfg_.data.train, cfg_.data.seq_len, cfg_.data.shuffle, cfg_.data.seed,
                                       cfg_.model.vocab_size);
}

void Trainer::set_train_position(const std::string& stored_config) {
  auto counts = state_.set_samples, origin = state_.set_samples_origin;
  if (counts.empty()) counts.assign(cfg_.data.train.size(), 0);
  Index total = 0;
  for (Index c : counts) total += c;
  if (counts.size() != cfg_.data.train.size() || total != state_.samples_seen)
    fail(cfg_.source, "[[data.train]] has " + std::to_string(cfg_.data.train.size()) +
                          " sets but the checkpoint's data position is for " + std::to_string(counts.size()) +
                          ": a resumed run needs the same training sets");
  if (!stored_config.empty()) {  // init.load = "full" (a resume cannot change them): new weights apply from here
    const auto before = Mixture::shares(parse_run_config(stored_config, "the checkpoint's stored config", {}).data.train);
    if (before != Mixture::shares(cfg_.data.train)) {
      origin = counts;
      if (comm_.root())
        std::fprintf(stderr,
                     "rewarm: [[data.train]] weights differ from the checkpoint's run: they apply from its sample "
                     "%lld on, each set continuing its own window order\n",
                     static_cast<long long>(total));
    }
  }
  mixture_->set_counts(counts, origin);
}

// This rank's share of the step's samples, all read before any compute: a read error on one
// rank stops every rank here, before a collective that the others would wait in.
void Trainer::read_step_windows(StepResult& r) {
  const Index G = cfg_.data.global_batch, per_rank = G / comm_.size(), first = comm_.rank() * per_rank;
  const Index W = cfg_.data.seq_len + 1;
  std::vector<Mixture::Draw> draws;  // every sample of the step (the stream is every rank's)
  for (Index j = 0; j < G; ++j) draws.push_back(mixture_->draw());
  const auto d0 = std::chrono::steady_clock::now();
  windows_.resize(std::size_t(per_rank * W));
  comm_.agree([&] {
    for (Index j = 0; j < per_rank; ++j) mixture_->read(draws[std::size_t(first + j)], windows_.data() + j * W);
  });
  r.data_seconds = seconds_since(d0);
}

StepResult Trainer::step() {
  const Index t = state_.step + 1, mb = cfg_.data.micro_batch, W = cfg_.data.seq_len + 1;
  const double grad_scale = 1.0 / double(cfg_.tokens_per_step());
  StepResult r{};
  read_step_windows(r);
  model_->timing.forward = model_->timing.backward = 0;
  // Each micro-batch's loss sum in its place among the step's (this rank's places follow the
  // ranks before it), summed over the ranks (exact: one rank fills each place), then added in
  // order: the step's loss to the bit on any rank count (a sum of the ranks' sums groups it otherwise).
  const Index M = dp_->micro_batches();
  micro_losses_.assign(std::size_t(M * comm_.size()), 0.0);
  for (Index u = 0; u < M; ++u) {  // forward and backward, micro-batch by micro-batch
    for (Index j = 0; j < mb; ++j) batch_->stage(j, windows_.data() + (u * mb + j) * W);
    batch_->upload();
    model_->zero_grads();
    dp_->begin_micro_batch(u);
    micro_losses_[std::size_t(comm_.rank() * M + u)] =
        model_->forward_backward(batch_->ids(), batch_->targets(), grad_scale, batch_->host_ids());
    const auto g0 = std::chrono::steady_clock::now();
    dp_->end_micro_batch();
    if (profile_) {  // the sum over micro-batches counts as backward
      kx::fence("rewarm::profile");
      r.backward_seconds += seconds_since(g0);
    }
  }
  r.forward_seconds = model_->timing.forward, r.backward_seconds += model_->timing.backward;
  const auto a0 = std::chrono::steady_clock::now();
  const auto g = dp_->reduce();  // Σ over micro-batches and ranks: this rank's part of the gradient
  comm_.sum(micro_losses_);
  double loss_sum = 0;
  for (const double x : micro_losses_) loss_sum += x;
  r.loss = loss_sum * grad_scale;
  r.grad_norm = dp_->grad_norm(g);
  if (profile_) kx::fence("rewarm::profile");
  r.allreduce_seconds = seconds_since(a0);
  const auto o0 = std::chrono::steady_clock::now();
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm))  // before the update: nothing bad is saved
    throw CollectiveError(cfg_.run_dir + ": " + (std::isfinite(r.loss) ? "gradient norm" : "loss") + " became " +
                          (std::isnan(r.loss) || std::isnan(r.grad_norm) ? "NaN" : "infinite") + " at step " +
                          std::to_string(t) + "; stopped, earlier checkpoints are kept");
  clip_by_global_norm(g, r.grad_norm, cfg_.optimizer.grad_clip);
  r.lr = cfg_.lr_at(t);
  adamw_step(dp_->owned_params(), g, flat(exp_avg_), flat(exp_avg_sq_),
             model_->layout().decay_end - dp_->owned_offset(), cfg_.optimizer, r.lr, t);
  if (profile_) kx::fence("rewarm::profile");
  r.optimizer_seconds = seconds_since(o0);
  const auto a1 = std::chrono::steady_clock::now();
  dp_->after_update();  // every rank's updated parameters where the model reads them
  r.allreduce_seconds += seconds_since(a1);
  kx::fence("rewarm::step");  // the step is done when the timer is read
  state_.step = t;
  state_.samples_seen += cfg_.data.global_batch;
  state_.set_samples = mixture_->counts();
  state_.set_samples_origin = mixture_->origin();
  state_.tokens_seen += cfg_.tokens_per_step();
  return r;
}

std::map<std::string, double> Trainer::evaluate() {
  if (!eval_) eval_ = std::make_unique<Evaluation>(cfg_);
  std::map<std::string, double> out;
  for (std::size_t i = 0; i < eval_->size(); ++i)
    out[eval_->name(i)] = eval_->loss(i, *model_, *batch_, comm_, dp_->collective_passes());
  return out;
}

std::vector<std::pair<std::string, TaskScore>> Trainer::evaluate_tasks() {
  if (!tasks_) tasks_ = std::make_unique<TaskEvaluation>(cfg_);
  std::vector<std::pair<std::string, TaskScore>> out;
  for (std::size_t i = 0; i < tasks_->size(); ++i)
    out.emplace_back(tasks_->name(i), tasks_->score(i, *model_, *batch_, comm_, dp_->collective_passes()));
  return out;
}

void Trainer::run_eval(TrainLog& log) {
  for (std::size_t i = 0; i < eval_->size(); ++i) {
    const auto e0 = std::chrono::steady_clock::now();
    const double loss = eval_->loss(i, *model_, *batch_, comm_, dp_->collective_passes());
    log.eval(eval_->name(i), state_, loss, seconds_since(e0));
  }
  for (std::size_t i = 0; i < tasks_->size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto score = tasks_->score(i, *model_, *batch_, comm_, dp_->collective_passes());
    log.task(tasks_->name(i), state_, score, seconds_since(t0));
  }
}

void Trainer::save_checkpoint() {
  CheckpointHeader h;
  h.model = cfg_.model;
  h.config_text = config_text_;
  h.tokenizer = tokenizer_;
  h.state = state_;
  h.world_size = comm_.size();
  checkpoints_.save(h, *dp_, exp_avg_, exp_avg_sq_);
}

Trainer::Stop Trainer::train(Index stop_at) {
  comm_.agree([&] {
    if (stop_at != -1 && stop_at <= state_.step)
      fail("--stop-at " + std::to_string(stop_at),
           state_.step > 0 ? "is not after step " + std::to_string(state_.step) + ", where this run resumes"
                           : "must be a step >= 1");
  });
  TrainLog::Start start;
  start.origin = origin_;
  // where the choice means something: a GPU, bf16 GEMMs, or an attention asked for by name
  if (!kHostMemory || cfg_.precision.gemm == GemmPrecision::bf16 || cfg_.precision.attention != AttentionRequest::automatic)
    start.attention = attention_.line();
  if (comm_.size() > 1) start.parallel = dp_->description();
  start.overlap_off = dp_->overlap_off();
  const Metrics::Run run{device_description(), comm_.size(), to_string(cfg_.precision.gemm), attention_.name()};
  TrainLog log(cfg_, comm_, checkpoints_, config_text_, run, state_.step, start);
  const Index total = cfg_.total_steps();
  if (state_.step == 0 && cfg_.train.eval_at_start) run_eval(log);
  if (comm_.any(stop_requested())) {  // a signal while the run started: nothing new to save
    log.stopped_before(state_.step + 1);
    return Stop::signal;
  }
  while (state_.step < total) {
    const auto t0 = std::chrono::steady_clock::now();
    const StepResult r = step();
    const Index t = state_.step;
    const double seconds = seconds_since(t0);
    const bool signalled = comm_.any(stop_requested());           // every rank stops at the same step
    const bool last = t == total || t == stop_at || signalled;  // logged wherever it falls
    log.step(state_, r, seconds, last);
    if (cfg_.train.eval_interval > 0 && (t % cfg_.train.eval_interval == 0 || t == total)) run_eval(log);
    comm_.agree([&] {  // the heartbeat found that another process took this run_dir: stop writing it
      if (lock_ && lock_->lost()) throw Error(lock_->lost_message());
    });
    if (checkpoints_.due(t, last)) {
      const auto c0 = std::chrono::steady_clock::now();
      save_checkpoint();
      log.checkpoint(t, checkpoints_.last_path(), seconds_since(c0));
    }
    if (t == stop_at || (signalled && t < total)) {
      log.stopped_after(t, signalled);
      return signalled ? Stop::signal : Stop::stop_at;
    }
  }
  return Stop::finished;
}

}  // namespace rewarm
