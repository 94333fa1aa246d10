#include "app/trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <new>
#include <regex>

#include "app/memory_plan.hpp"
#include "app/progress.hpp"
#include "app/stop_signals.hpp"
#include "core/device.hpp"
#include "core/error.hpp"
#include "core/host_memory.hpp"
#include "core/host_threads.hpp"
#include "io/metrics.hpp"
#include "io/run_dir_lock.hpp"
#include "optim/adamw.hpp"
#include "optim/gradients.hpp"
#include "parallel/sliced_checkpoint.hpp"

namespace rewarm {
namespace fs = std::filesystem;

std::string device_description() {
  return std::string(ExecSpace::name()) + " x" + std::to_string(ExecSpace().concurrency());
}

template <class V>
static std::vector<float> download(const V& src) {
  auto h = host_copy(src);
  return std::vector<float>(h.data(), h.data() + h.extent(0));
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
    : cfg_(std::move(cfg)), comm_(comm), slices_(0, 1) {
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
    if (purpose != Purpose::bench) open_eval_data();
    attention_ = choose_attention(
        cfg_.precision.attention, gemm_precision(cfg_.precision.gemm, cfg_.source),
        {cfg_.data.micro_batch, cfg_.data.seq_len, cfg_.model.num_attention_heads, cfg_.model.head_dim()}, cfg_.source);
    const Footprint fit = footprint(resuming || (weights.empty() && cfg_.init.load == "full"));
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
      check_run_dir();
    });
    const auto existing = list_checkpoints(cfg_.run_dir);
    if (!existing.empty()) {  // its newest checkpoint continues the run exactly
      resume = true;
      take_model_from(existing.back());
      last_checkpoint_ = {ck->state().step, existing.back()};
    }
    if (resuming && !resume) fail(cfg_.run_dir, "its checkpoints were removed while this run started: start it again");
    if (resuming) open_data();
  }
  const bool full = resume || (weights.empty() && cfg_.init.load == "full");
  if (ck) {
    if (full && !ck->has_optimizer())
      fail(ck->path(), "has no optimizer state (/optimizer): use init.load = \"weights\"");
    if (full) state_ = ck->state();
    if (!ck->checksummed() && comm_.root()) std::fprintf(stderr, "rewarm: note: %s\n", unverified_note(*ck).c_str());
    origin_ = std::string(resume ? "resuming from " : "weights from ") + ck->path() + " (step " +
              std::to_string(ck->state().step) + ")";
  }
  if (mixture_) set_train_position();
  config_text_ = cfg_.to_toml();
  if (resume) {  // the same run, or nothing: only keys that leave the trajectory alone may change
    const auto changed = changes_refused_on_resume(ck->config_text(), config_text_);
    if (!changed.empty())
      fail(cfg_.source, "resuming " + ck->path() + " with a changed config: " + join(changed) +
                            ". A resumed run may change only " + join(resume_may_change()) +
                            "; start another run_dir for another run");
  }

  const Footprint fit = footprint(full);
  const Index P = ParamLayout(cfg_.model).total;
  try {  // an allocation that fails all the same is one line too, not Kokkos' traceback
    model_ = std::make_unique<Gpt<float>>(cfg_.model, cfg_.data.micro_batch, cfg_.data.seq_len, fit.options);
    slices_ = Slices(P, cfg_.parallel.zero ? comm_.size() : 1);
    own_.offset = slices_.offset[cfg_.parallel.zero ? comm_.rank() : 0];
    own_.count = slices_.count[cfg_.parallel.zero ? comm_.rank() : 0];
    if (cfg_.parallel.zero == 3) {
      units_ = std::make_unique<ParamUnits>(model_->layout(), slices_, comm_, fit.options.gemm == GemmPrecision::bf16);
      model_->units = [this](std::size_t u, UnitUse use, std::ptrdiff_t next) { return units_->use(u, use, next); };
      grad_shard_ =
          View1<float>(Kokkos::view_alloc(std::string("rewarm::grad_shard"), Kokkos::WithoutInitializing), own_.count);
    }
    if (sliced_sum())
      sliced_ = std::make_unique<SlicedGradientSum>(slices_, comm_.rank(), model_->layout().largest_bucket_range());
    else if (!direct_steps())
      grad_sum_ = View1<double>("rewarm::grad_sum", P);
    if (cfg_.parallel.zero == 1 && !reduce_fp32()) grad_slice_ = View1<double>("rewarm::grad_slice", own_.count);
    if (cfg_.parallel.zero == 1 && reduce_fp32()) grad_slice32_ = View1<float>("rewarm::grad_slice32", own_.count);
    exp_avg_ = View1<float>("rewarm::exp_avg", own_.count);
    exp_avg_sq_ = View1<float>("rewarm::exp_avg_sq", own_.count);
    const Index n = cfg_.data.micro_batch * cfg_.data.seq_len;
    ids_ = View1<std::int32_t>("rewarm::ids", n);
    targets_ = View1<std::int32_t>("rewarm::targets", n);
    h_ids_ = Kokkos::create_mirror_view(PinnedSpace(), ids_);
    h_targets_ = Kokkos::create_mirror_view(PinnedSpace(), targets_);
  } catch (const std::exception& e) {
    const std::string kokkos = e.what();
    if (kokkos.find("alloc") == std::string::npos && !dynamic_cast<const std::bad_alloc*>(&e)) throw;
    std::smatch m;
    const std::string which =
        std::regex_search(kokkos, m, std::regex("label \"([^\"]+)\"")) ? " (" + m[1].str() + ")" : "";
    fail(cfg_.source, "out of memory allocating " + fit.what + which + ": estimated " + gib(fit.need) + ", " +
                          gib(double(memory_budget().free)) + " free now" + fit.advice);
  }
  if (units_) {  // ZeRO-3: this rank's slice only, from the seeded stream or the checkpoint
    auto h = Kokkos::create_mirror_view(units_->shard());
    if (ck)
      ck->read_params_part(own_.offset, own_.count, h.data());
    else
      init_random_part(model_->layout(), cfg_.init.seed, cfg_.init.std, own_.offset, own_.count, h.data());
    Kokkos::deep_copy(units_->shard(), h);
    units_->changed();
  } else if (!ck) {
    model_->init_random(cfg_.init.seed, cfg_.init.std);
  } else {  // straight into the buffers (their host mirrors on a GPU), each tensor verified on the way
    auto h_params = Kokkos::create_mirror_view(model_->params);
    ck->read_params(h_params.data());
    Kokkos::deep_copy(model_->params, h_params);
    model_->params_changed();
  }
  if (ck) {
    if (full) {
      auto h_m = Kokkos::create_mirror_view(exp_avg_), h_v = Kokkos::create_mirror_view(exp_avg_sq_);
      ck->read_moments_part(own_.offset, own_.count, h_m.data(), h_v.data());  // ZeRO: this rank's slice only
      Kokkos::deep_copy(exp_avg_, h_m);
      Kokkos::deep_copy(exp_avg_sq_, h_v);
    }
  }
  windows_.resize(std::size_t(cfg_.data.seq_len + 1));
  // On GPUs, the gradients go through NCCL/RCCL where the build has it (collective: every rank).
  if (!kHostMemory && comm_.size() > 1) collectives_ = DeviceCollectives::create(comm_, &collectives_why_);
  if (units_) units_->set_collectives(collectives_.get());
  // Overlapped: with NCCL/RCCL, or nonblocking MPI on host memory (Open MPI's CUDA-aware
  // collectives are the blocking ones: its libnbc would sum a GPU buffer on the host).
  overlap_ = cfg_.parallel.overlap && comm_.size() > 1 && !cfg_.parallel.zero && (kHostMemory || collectives_);
  buckets_ = model_->layout().gradient_buckets();
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

// Row j of the batch: inputs are the window's first seq_len tokens, targets its last seq_len.
void Trainer::stage_window(Index j, const std::int32_t* window) {
  const Index T = cfg_.data.seq_len;
  for (Index t = 0; t < T; ++t) {
    h_ids_(j * T + t) = window[t];
    h_targets_(j * T + t) = window[t + 1];
  }
}

// Enqueued on the execution space's stream, so the host goes on reading. The host batch is
// rewritten only after the forward pass that reads this upload has returned its loss to the
// host, which orders the copy before the rewrite.
void Trainer::upload_batch() {
  Kokkos::deep_copy(ExecSpace(), ids_, h_ids_);
  Kokkos::deep_copy(ExecSpace(), targets_, h_targets_);
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

// Rank r evaluates windows [r·n/N, (r+1)·n/N); the token losses are summed in double.
double Trainer::eval_set(std::size_t i) {
  const auto& shard = *eval_shards_.at(i);
  const Index T = cfg_.data.seq_len, B = cfg_.data.micro_batch, N = comm_.size(), r = comm_.rank();
  const Index n = eval_windows(cfg_.data.eval[i], shard, T);
  const Index begin = r * n / N, end = (r + 1) * n / N;
  double total = 0;
  // ZeRO-3: every forward pass gathers with every rank, so every rank makes as many (a rank with
  // fewer windows computes its last batch again, counting none of it)
  const Index batches = (end - begin + B - 1) / B;
  const Index passes = units_ ? -Index(comm_.min(-int(batches))) : batches;
  comm_.agree([&] {
    for (Index k = 0; k < passes; ++k) {
      const Index first = begin + std::min(k, batches - 1) * B;
      const Index rows = k < batches ? std::min(B, end - first) : 0;
      for (Index j = 0; j < B; ++j) {  // a short last batch repeats its last window; only `rows` count
        shard.read_window(std::max<Index>(std::min(first + j, end - 1), 0), T, cfg_.model.vocab_size, windows_.data());
        stage_window(j, windows_.data());
      }
      upload_batch();
      total += model_->forward(ids_, targets_, 0, rows * T);
    }
  });
  return comm_.sum(total) / double(n * T);
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

// This rank's elements [offset, offset + count) of v, in host memory (v itself on a CPU).
template <class V>
static auto host_part(const V& v, Index offset, Index count) {
  return Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(),
                                             Kokkos::subview(v, std::make_pair(offset, offset + count)));
}

// The full state whatever the rank count. On several ranks each writes its slice into the one
// file (parallel HDF5); without MPI-IO the ZeRO moments are gathered to rank 0, which writes.
void Trainer::save_checkpoint() {
  const std::string path = checkpoint_path(cfg_.run_dir, state_.step);
  CheckpointHeader h;
  h.model = cfg_.model;
  h.config_text = config_text_;
  h.state = state_;
  h.world_size = comm_.size();
  if (comm_.size() > 1 && parallel_checkpoints_available()) {
    const Slices parts(slices_.total(), comm_.size());
    FlatPart mine;
    mine.offset = parts.offset[comm_.rank()], mine.count = parts.count[comm_.rank()];
    mine.state = comm_.root();
    const auto p = units_ ? host_part(units_->shard(), mine.offset - own_.offset, mine.count)  // zero 3: own_ is mine
                          : host_part(model_->params, mine.offset, mine.count);
    const auto m = host_part(exp_avg_, mine.offset - own_.offset, mine.count);  // zero 0: own_ is everything
    const auto v = host_part(exp_avg_sq_, mine.offset - own_.offset, mine.count);
    mine.params = p.data(), mine.exp_avg = m.data(), mine.exp_avg_sq = v.data();
    write_checkpoint_sliced(comm_, path, h, mine, last_good_checkpoint());
  } else {
    CheckpointData c;
    static_cast<CheckpointHeader&>(c) = h;
    // every rank's slice of a sharded part (ZeRO: the moments; zero 3: the parameters too)
    auto gathered = [&](const View1<float>& part) {
      std::vector<float> full(std::size_t(slices_.total()));
      const auto mine = host_copy(part);
      std::copy(mine.data(), mine.data() + own_.count, full.begin() + own_.offset);
      if (cfg_.parallel.zero)  // every rank holds a slice
        comm_.gather_to_root(
            Kokkos::View<float*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(full.data(), full.size()),
            slices_);
      return full;
    };
    if (cfg_.parallel.zero || comm_.root()) {  // zero 0: rank 0 holds all the moments
      c.exp_avg = gathered(exp_avg_);
      c.exp_avg_sq = gathered(exp_avg_sq_);
    }
    if (units_) c.params = gathered(units_->shard());
    writing([&] {
      if (!units_) c.params = download(model_->params);
      write_checkpoint(path, c);
    });
  }
  last_checkpoint_ = {state_.step, path};
  if (!comm_.root()) return;
  auto all = list_checkpoints(cfg_.run_dir);
  const std::size_t keep = std::size_t(std::max<Index>(cfg_.train.keep_checkpoints, 1));
  for (std::size_t i = 0; i + keep < all.size(); ++i) {
    std::error_code ec;  // an old checkpoint that stays is no reason to stop
    if (!fs::remove(all[i], ec) && ec)
      std::fprintf(stderr, "rewarm: warning: cannot remove %s (keep_checkpoints = %lld): %s\n", all[i].c_str(),
                   static_cast<long long>(keep), ec.message().c_str());
  }
}

// Rank 0's writes (checkpoints, metrics): a failure ends every rank with one line that names
// the file, the OS's reason and the last good checkpoint.
void Trainer::writing(const std::function<void()>& write) {
  comm_.agree([&] {
    if (!comm_.root()) return;
    try {
      write();
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + "; " + last_good_checkpoint());
    }
  });
}

std::string Trainer::last_good_checkpoint() const {
  return last_checkpoint_.step >= 0 ? "the last good checkpoint is step " + std::to_string(last_checkpoint_.step) +
                                          " (" + last_checkpoint_.path + ")"
                                    : std::string("no checkpoint of this run was written");
}

void Trainer::open_train_data() {
  const Index G = cfg_.data.global_batch, mb = cfg_.data.micro_batch, N = comm_.size();
  if (G % (mb * N) != 0)
    fail(cfg_.source, "data.global_batch = " + std::to_string(G) + " is not a multiple of data.micro_batch × ranks = " +
                          std::to_string(mb) + " × " + std::to_string(N) + " = " + std::to_string(mb * N));
  mixture_ = std::make_unique<Mixture>(cfg_.data.train, cfg_.data.seq_len, cfg_.data.shuffle, cfg_.data.seed,
                                       cfg_.model.vocab_size);
}

void Trainer::set_train_position() {
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
  const Index t = state_.step + 1, G = cfg_.data.global_batch, mb = cfg_.data.micro_batch;
  const Index per_rank = G / comm_.size(), first_sample = comm_.rank() * per_rank;
  const double grad_scale = 1.0 / double(cfg_.tokens_per_step());
  StepResult r{};
  model_->timing.forward = model_->timing.backward = 0;
  std::vector<Mixture::Draw> draws;  // every sample of the step; this rank reads its slice
  for (Index j = 0; j < G; ++j) draws.push_back(mixture_->draw());
  // This rank's windows, all read before any compute: a read error on one rank stops every
  // rank here, before a collective that the others would wait in.
  const Index W = cfg_.data.seq_len + 1, micro = per_rank / mb;
  const auto d0 = std::chrono::steady_clock::now();
  windows_.resize(std::size_t(per_rank * W));
  comm_.agree([&] {
    for (Index j = 0; j < per_rank; ++j) mixture_->read(draws[std::size_t(first_sample + j)], windows_.data() + j * W);
  });
  r.data_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - d0).count();
  // One micro-batch on one rank: its gradient is the step's, and the double sum would round back
  // to the very same floats, so it is skipped.
  const bool direct = direct_steps();
  // Sums over the ranks: NCCL/RCCL on the device where built (ordered by events, joined into the
  // compute stream), MPI otherwise.
  auto start_sum = [&](auto* data, Index n) {
    if (collectives_)
      collectives_->start_allreduce_sum(data, n);
    else
      comm_.start_allreduce_sum(data, n);
  };
  auto sum_all = [&](const auto& v) {
    if (!collectives_) return comm_.allreduce_sum(v);
    collectives_->start_allreduce_sum(v.data(), Index(v.size()));
    collectives_->join();
  };
  auto scatter_sum = [&](const auto& send, const auto& recv) {
    if (!collectives_) return comm_.reduce_scatter_sum(send, recv, slices_);
    collectives_->start_reduce_scatter_sum(send.data(), recv.data(), slices_);
    collectives_->join();
  };
  double loss_sum = 0;
  for (Index u = 0; u < micro; ++u) {
    const bool first = u == 0, overlap = overlap_ && u == micro - 1;
    for (Index j = 0; j < mb; ++j) stage_window(j, windows_.data() + (u * mb + j) * W);
    upload_batch();
    model_->zero_grads();
    if (sliced_)  // ZeRO-2, 3: each bucket summed over the ranks into this rank's slice as soon as it is final
      model_->on_gradients = [&](std::size_t b) {
        for (std::size_t k = 0; k < buckets_[b].size(); ++k) {
          const auto [begin, end] = buckets_[b][k];
          const float* range = units_ ? units_->grads(b, k) : model_->grads.data() + begin;
          sliced_->add(comm_, collectives_.get(), range, begin, end, first);
        }
      };
    else if (overlap)  // each bucket into the sum, then over the ranks, as soon as it is final
      model_->on_gradients = [&](std::size_t b) {
        for (const auto& [begin, end] : buckets_[b]) {
          const auto sum = as_vector(grad_sum_.data() + begin, end - begin);
          const auto grad = as_vector(model_->grads.data() + begin, end - begin);
          accumulate_gradient(sum, grad, first);
          if (reduce_fp32()) round_gradient(grad, sum);  // this rank's sum, reduced in float
        }
        if (!collectives_) kx::fence("rewarm::bucket");  // MPI reads what the kernels wrote (NCCL: events)
        for (const auto& [begin, end] : buckets_[b]) {
          if (reduce_fp32())
            start_sum(model_->grads.data() + begin, end - begin);
          else
            start_sum(grad_sum_.data() + begin, end - begin);
        }
      };
    loss_sum += model_->forward(ids_, targets_, grad_scale, -1, h_ids_.data());
    model_->on_gradients = nullptr;
    const auto g0 = std::chrono::steady_clock::now();
    if (!direct && !overlap && !sliced_) accumulate_gradient(flat(grad_sum_), flat(model_->grads), first);
    if (profile_) {  // the sum over micro-batches counts as backward
      kx::fence("rewarm::profile");
      r.backward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - g0).count();
    }
  }
  r.forward_seconds = model_->timing.forward, r.backward_seconds += model_->timing.backward;
  // Σ over ranks, then this rank's part of the gradient in working precision
  const auto a0 = std::chrono::steady_clock::now();
  const auto g = as_vector(units_ ? grad_shard_.data() : model_->grads.data() + own_.offset, own_.count);
  // reduce = "fp32": each rank's double sum rounded to float first, then summed over the ranks in
  // float (half the bytes; the same run on the same ranks, within 1e-6 across rank counts)
  const bool fp32 = reduce_fp32();
  if (direct) {
    // the micro-batch's gradient is the step's, on the only rank
  } else if (sliced_) {
    round_gradient(g, flat(sliced_->sum()));
  } else if (cfg_.parallel.zero && fp32) {
    round_gradient(flat(model_->grads), flat(grad_sum_));
    scatter_sum(model_->grads, grad_slice32_);
    Kokkos::deep_copy(ExecSpace(), g, grad_slice32_);
  } else if (cfg_.parallel.zero) {
    scatter_sum(grad_sum_, grad_slice_);
    round_gradient(g, flat(grad_slice_));
  } else if (overlap_) {
    if (collectives_)
      collectives_->join();
    else
      comm_.wait_all();
    if (!fp32) round_gradient(g, flat(grad_sum_));
  } else if (fp32) {
    round_gradient(g, flat(grad_sum_));
    sum_all(model_->grads);
  } else {
    sum_all(grad_sum_);
    round_gradient(g, flat(grad_sum_));
  }
  r.loss = comm_.sum(loss_sum) * grad_scale;
  r.grad_norm = std::sqrt(cfg_.parallel.zero ? comm_.sum(sum_of_squares(g)) : sum_of_squares(g));
  if (profile_) kx::fence("rewarm::profile");
  r.allreduce_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - a0).count();
  const auto o0 = std::chrono::steady_clock::now();
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm))  // before the update: nothing bad is saved
    throw CollectiveError(cfg_.run_dir + ": " + (std::isfinite(r.loss) ? "gradient norm" : "loss") + " became " +
                          (std::isnan(r.loss) || std::isnan(r.grad_norm) ? "NaN" : "infinite") + " at step " +
                          std::to_string(t) + "; stopped, earlier checkpoints are kept");
  clip_by_global_norm(g, r.grad_norm, cfg_.optimizer.grad_clip);
  r.lr = cfg_.lr_at(t);
  const auto p = as_vector(units_ ? units_->shard().data() : model_->params.data() + own_.offset, own_.count);
  adamw_step(p, g, flat(exp_avg_), flat(exp_avg_sq_), model_->layout().decay_end - own_.offset, cfg_.optimizer, r.lr,
             t);
  if (profile_) kx::fence("rewarm::profile");
  r.optimizer_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - o0).count();
  if (units_) {
    units_->changed();  // each unit is gathered again as the next forward pass reaches it
  } else if (cfg_.parallel.zero) {
    const auto a1 = std::chrono::steady_clock::now();
    if (collectives_) {
      collectives_->start_allgather(model_->params.data(), slices_);
      collectives_->join();
    } else {
      comm_.allgather(model_->params, slices_);
    }
    r.allreduce_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - a1).count();
  }
  model_->params_changed();
  kx::fence("rewarm::step");  // the step is done when the timer is read
  state_.step = t;
  state_.samples_seen += G;
  state_.set_samples = mixture_->counts();
  state_.tokens_seen += cfg_.tokens_per_step();
  return r;
}

Trainer::Stop Trainer::train(Index stop_at) {
  comm_.agree([&] {
    if (stop_at != -1 && stop_at <= state_.step)
      fail("--stop-at " + std::to_string(stop_at),
           state_.step > 0 ? "is not after step " + std::to_string(state_.step) + ", where this run resumes"
                           : "must be a step >= 1");
  });
  const bool root = comm_.root(), resumed = state_.step > 0;
  std::unique_ptr<Metrics> metrics;  // rank 0 logs and prints
  if (root) {
    std::printf("compute: %s\n", compute_description().c_str());
    if (!origin_.empty()) std::fprintf(stderr, "rewarm: %s\n", origin_.c_str());
    // where the choice means something: a GPU, bf16 GEMMs, or an attention asked for by name
    if (!kHostMemory || cfg_.precision.gemm == "bf16" || cfg_.precision.attention != "auto")
      std::fprintf(stderr, "rewarm: attention: %s\n", attention_.line().c_str());
    const std::string via = collectives_               ? collectives_->description()
                            : collectives_why_.empty() ? std::string("MPI")
                                                       : "MPI (" + collectives_why_ + ")";
    if (comm_.size() > 1)
      std::fprintf(
          stderr, "rewarm: %d ranks, %lld samples each per step; AdamW state %.1f MiB per rank%s; gradients over %s\n",
          comm_.size(), static_cast<long long>(cfg_.data.global_batch / comm_.size()),
          double(optimizer_bytes()) / (1 << 20),
          cfg_.parallel.zero ? (" (ZeRO-" + std::to_string(cfg_.parallel.zero) + ")").c_str() : "", via.c_str());
    if (cfg_.parallel.overlap && !overlap_ && comm_.size() > 1 && cfg_.parallel.zero < 2)  // zero 2: always by bucket
      std::fprintf(stderr, "rewarm: [parallel] overlap is off: %s\n",
                   cfg_.parallel.zero
                       ? "not with zero = 1"
                       : "nonblocking MPI collectives take host memory only (and there is no NCCL/RCCL)");
  }
  writing([&] {
    std::vector<std::string> train_sets, eval_sets;
    for (const auto& d : cfg_.data.train) train_sets.push_back(d.name);
    for (const auto& d : cfg_.data.eval) eval_sets.push_back(d.name);
    metrics = std::make_unique<Metrics>(
        (fs::path(cfg_.run_dir) / "metrics.h5").string(), config_text_,
        Metrics::Run{device_description(), comm_.size(), cfg_.precision.gemm, attention_.name()},
        resumed ? state_.step : -1, train_sets, eval_sets);
  });
  Progress progress(cfg_.schedule.total_steps, training_flops_per_token(cfg_.model, cfg_.data.seq_len));
  const auto t_start = std::chrono::steady_clock::now();
  auto since = [](std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  auto run_eval = [&] {
    for (std::size_t i = 0; i < cfg_.data.eval.size(); ++i) {
      const auto e0 = std::chrono::steady_clock::now();
      const auto& name = cfg_.data.eval[i].name;
      const double loss = eval_set(i);
      writing([&] { metrics->log_eval(name, state_.step, state_.tokens_seen, loss); });
      if (root)
        std::printf("eval  step %s | %-12s loss %.9g | ppl %.6g | %.1f s\n",
                    progress.step_of_total(state_.step).c_str(), name.c_str(), loss, std::exp(loss), since(e0));
    }
    std::fflush(stdout);
  };
  if (!resumed && cfg_.train.eval_at_start) run_eval();

  if (comm_.any(stop_requested())) {  // a signal while the run started: nothing new to save
    if (root)
      std::printf("stopped before step %lld (signal: time limit near); rerun the same command to resume\n",
                  static_cast<long long>(state_.step + 1));
    std::fflush(stdout);
    return Stop::signal;
  }
  while (state_.step < cfg_.schedule.total_steps) {
    const auto t0 = std::chrono::steady_clock::now();
    const StepResult r = step();
    const Index t = state_.step;
    const double secs = since(t0);
    progress.step_done(secs);
    const bool signalled = comm_.any(stop_requested());                             // every rank stops at the same step
    const bool last = t == cfg_.schedule.total_steps || t == stop_at || signalled;  // logged wherever it falls
    if (t % cfg_.train.log_interval == 0 || last) {
      const double tokens = double(cfg_.tokens_per_step()), elapsed = since(t_start);
      std::vector<std::pair<std::string, Index>> set_samples;
      for (std::size_t i = 0; i < cfg_.data.train.size(); ++i)
        set_samples.emplace_back(cfg_.data.train[i].name, state_.set_samples[i]);
      TrainRecord rec{t, state_.tokens_seen, r.lr, r.loss, r.grad_norm, tokens / secs, elapsed};
      rec.step_seconds = secs;
      rec.model_flops_per_second = tokens / secs * training_flops_per_token(cfg_.model, cfg_.data.seq_len);
      writing([&] { metrics->log_train(rec, set_samples); });
      if (root)
        std::printf("train step %s | loss %.9g | lr %.3e | grad_norm %.4f | %s | %s elapsed | ETA %s\n",
                    progress.step_of_total(t).c_str(), r.loss, r.lr, r.grad_norm, progress.rates(tokens, secs).c_str(),
                    format_duration(elapsed).c_str(), format_duration(progress.eta_seconds(t)).c_str());
      std::fflush(stdout);
    }
    if (cfg_.train.eval_interval > 0 && (t % cfg_.train.eval_interval == 0 || t == cfg_.schedule.total_steps))
      run_eval();
    comm_.agree([&] {  // the heartbeat found that another process took this run_dir: stop writing it
      if (lock_ && lock_->lost()) throw Error(lock_->lost_message());
    });
    if ((cfg_.train.checkpoint_interval > 0 && t % cfg_.train.checkpoint_interval == 0) || last) {
      const auto c0 = std::chrono::steady_clock::now();
      save_checkpoint();
      if (root)
        std::printf("checkpoint step %lld | %s | %.1f s\n", static_cast<long long>(t), last_checkpoint_.path.c_str(),
                    since(c0));
      std::fflush(stdout);
    }
    if (t == stop_at || (signalled && t < cfg_.schedule.total_steps)) {
      if (root)
        std::printf("stopped after step %lld (%s); rerun the same command to resume\n", static_cast<long long>(t),
                    signalled ? "signal: time limit near" : "--stop-at");
      std::fflush(stdout);
      return signalled ? Stop::signal : Stop::stop_at;
    }
  }
  return Stop::finished;
}

}  // namespace rewarm
