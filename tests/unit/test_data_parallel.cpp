// DataParallel and CheckpointManager on however many ranks ctest starts the comm tests with (1,
// 2 and 3): every ZeRO stage's step gradient against a plain double sum of every rank's
// micro-batches, the update reaching every rank, the memory rule against the allocations, and
// the checkpoints' retention, last good one and failed writes. Collectives over MPI (the
// facade's MPI path; the GPU's NCCL path runs in bench/gpu/run.sh).
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <unistd.h>

#include "app/checkpoint_manager.hpp"
#include "app/device_batch.hpp"
#include "comm_world.hpp"
#include "core/op_counter.hpp"
#include "parallel/data_parallel.hpp"

using namespace rewarm;

namespace {
ModelConfig model() {
  ModelConfig m;
  m.vocab_size = 50, m.hidden_size = 24, m.num_hidden_layers = 2, m.num_attention_heads = 2;
  m.intermediate_size = 40, m.rotary_pct = 0.5;
  return m;
}

// micro_batches per rank per step
RunConfig run(const Comm& c, Index micro_batches) {
  RunConfig cfg;
  cfg.model = model();
  cfg.model_given = true;
  cfg.data.micro_batch = 2, cfg.data.seq_len = 6;
  cfg.data.global_batch = cfg.data.micro_batch * micro_batches * c.size();
  return cfg;
}

std::vector<float> host(const View1<float>& v) {
  auto h = host_copy(v);
  return std::vector<float>(h.data(), h.data() + h.extent(0));
}

// Rank r's micro-batch u: made-up windows, the same on every rank that asks.
void stage(DeviceBatch& batch, const RunConfig& cfg, int r, Index u) {
  std::vector<std::int32_t> w(std::size_t(cfg.data.seq_len + 1));
  for (Index j = 0; j < cfg.data.micro_batch; ++j) {
    for (Index t = 0; t <= cfg.data.seq_len; ++t)
      w[std::size_t(t)] = std::int32_t((r * 131 + u * 17 + j * 29 + t * 7 + t * t) % cfg.model.vocab_size);
    batch.stage(j, w.data());
  }
  batch.upload();
}
}  // namespace

TEST_CASE("data parallelism: every ZeRO stage's gradient is the double sum of every rank's micro-batches", "[comm]") {
  Comm& c = *world;
  RunConfig cfg = run(c, 2);
  const Index B = cfg.data.micro_batch, T = cfg.data.seq_len, micro = 2;
  const ParamLayout layout(cfg.model);
  const double scale = 1.0 / double(cfg.tokens_per_step());
  DeviceBatch batch(B, T);
  // The reference, on every rank: one model, every rank's micro-batches, a plain double sum.
  Gpt<float> ref(cfg.model, B, T);
  ref.init_random(7, 0.1);
  std::vector<double> sum(std::size_t(layout.total), 0.0);
  for (int r = 0; r < c.size(); ++r)
    for (Index u = 0; u < micro; ++u) {
      stage(batch, cfg, r, u);
      ref.zero_grads();
      ref.forward_backward(batch.ids(), batch.targets(), scale);
      const auto g = host(ref.grads);
      for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += double(g[i]);
    }
  double norm2 = 0, largest = 0;
  for (double s : sum) norm2 += double(float(s)) * double(float(s)), largest = std::max(largest, std::abs(s));
  // after the update (every parameter + 0.01): the reference's loss on a batch
  const auto params = host(ref.params);
  Gpt<float> moved(cfg.model, B, T);
  {
    auto h = Kokkos::create_mirror_view(moved.params);
    for (std::size_t i = 0; i < params.size(); ++i) h(Index(i)) = params[i] + 0.01f;
    Kokkos::deep_copy(moved.params, h);
  }
  stage(batch, cfg, 0, 5);
  const double moved_loss = moved.loss(batch.ids(), batch.targets());

  for (Index zero : {0, 1, 2, 3})
    for (const auto reduce : {GradientReduce::exact, GradientReduce::fp32})
      for (bool overlap : {false, true}) {
        if (overlap && zero) continue;  // [parallel] overlap is zero 0's (zero 2 and 3 always go by bucket)
        cfg.parallel.zero = zero, cfg.parallel.reduce = reduce, cfg.parallel.overlap = overlap;
        INFO("zero " << zero << ", reduce " << option_name(reduce) << ", overlap " << overlap << ", " << c.size() << " ranks");
        GptOptions o;
        o.sharded = zero == 3;
        Gpt<float> m(cfg.model, B, T, o);
        DataParallel dp(cfg, c, layout, false);
        dp.attach(m);
        {  // the reference's parameters where this rank holds them (zero 3: its slice)
          const auto held = dp.held_params();
          CHECK(Index(held.extent(0)) == (zero == 3 ? dp.owned_count() : layout.total));
          auto h = Kokkos::create_mirror_view(held);
          for (Index i = 0; i < Index(h.extent(0)); ++i) h(i) = params[std::size_t(dp.held_offset() + i)];
          Kokkos::deep_copy(held, h);
          dp.params_written();
        }
        CHECK(dp.micro_batches() == micro);
        for (Index u = 0; u < micro; ++u) {
          stage(batch, cfg, c.rank(), u);
          m.zero_grads();
          dp.begin_micro_batch(u);
          m.forward_backward(batch.ids(), batch.targets(), scale, batch.host_ids());
          dp.end_micro_batch();
        }
        const auto g = dp.reduce();
        auto hg = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), g);
        REQUIRE(Index(hg.extent(0)) == dp.owned_count());
        const bool fp32 = reduce == GradientReduce::fp32 && c.size() > 1;  // each rank's sum rounded to float first
        Index wrong = 0;
        for (Index i = 0; i < dp.owned_count(); ++i) {
          const double want = double(float(sum[std::size_t(dp.owned_offset() + i)]));
          wrong += fp32 ? std::abs(double(hg(i)) - want) > 1e-6 * largest : double(hg(i)) != want;
        }
        CHECK(wrong == 0);
        CHECK(dp.grad_norm(g) == Approx(std::sqrt(norm2)).epsilon(fp32 ? 1e-6 : 1e-12));
        // the update of each rank's part reaches every rank's model
        const auto p = dp.owned_params();
        Kokkos::parallel_for(
            "test::update", Range(0, p.extent(0)), KOKKOS_LAMBDA(Index i) { p(i) += 0.01f; });
        dp.after_update();
        if (zero < 3) {
          const auto now = host(m.params);
          Index stale = 0;
          for (std::size_t i = 0; i < now.size(); ++i) stale += now[i] != params[i] + 0.01f;
          CHECK(stale == 0);
        }
        stage(batch, cfg, 0, 5);
        CHECK(m.loss(batch.ids(), batch.targets()) == moved_loss);  // zero 3: its units gathered again
      }
}

TEST_CASE("data parallelism allocates what DataParallel::memory says (rewarm plan's rule)", "[comm]") {
  Comm& c = *world;
  for (Index micro : {1, 2})  // one micro-batch per step: no sum kept on one rank
    for (Index zero : {0, 1, 2, 3})
      for (const auto reduce : {GradientReduce::exact, GradientReduce::fp32})
        for (bool bf16 : {false, true}) {
          RunConfig cfg = run(c, micro);
          cfg.parallel.zero = zero, cfg.parallel.reduce = reduce;
          INFO("zero " << zero << ", reduce " << option_name(reduce) << ", bf16 " << bf16 << ", micro-batches " << micro);
          const ParamLayout layout(cfg.model);
          OpCounter ops;
          const auto before = ops.peak_bytes();
          { DataParallel dp(cfg, c, layout, bf16); }
          const auto m = DataParallel::memory(cfg, c.size(), c.rank(), bf16);
          CHECK(m.sharded_model == (zero == 3));
          CHECK(std::size_t(ops.peak_bytes() - before) ==
                m.weights + m.gradients + m.gradient_sum + m.communication + m.units);
          const Slices slices(layout.total, zero ? c.size() : 1);
          CHECK(m.adamw == 2 * allocation_bytes(slices.count[std::size_t(zero ? c.rank() : 0)], 4));
          if (micro == 1 && c.size() == 1 && zero < 3) CHECK(m.gradient_sum == 0);
        }
}

TEST_CASE("checkpoints: due steps, the newest kept, the last good one named, a failed write in one line", "[comm]") {
  Comm& c = *world;
  RunConfig cfg = run(c, 1);
  cfg.parallel.zero = c.size() > 1 ? 1 : 0;  // the moments in slices where there are several ranks
  cfg.train.checkpoint_interval = 3, cfg.train.keep_checkpoints = 2;
  const std::string dir = c.broadcast_string(
      c.root() ? (std::filesystem::temp_directory_path() / ("rewarm-ckpt-" + std::to_string(::getpid()))).string() : "",
      0);
  cfg.run_dir = dir;
  const ParamLayout layout(cfg.model);
  DataParallel dp(cfg, c, layout, false);
  Gpt<float> model(cfg.model, cfg.data.micro_batch, cfg.data.seq_len);
  dp.attach(model);
  View1<float> m("m", dp.owned_count()), v("v", dp.owned_count());
  Kokkos::deep_copy(dp.held_params(), 0.25f), Kokkos::deep_copy(m, 0.5f), Kokkos::deep_copy(v, 0.75f);
  CheckpointManager ck(cfg, c);
  CHECK(ck.due(3, false));
  CHECK(ck.due(6, false));
  CHECK_FALSE(ck.due(4, false));
  CHECK(ck.due(4, true));  // the last step of a run, wherever it falls
  CHECK(ck.last_good() == "no checkpoint of this run was written");
  c.agree([&] {
    if (c.root()) ck.check_dir();
  });
  CheckpointHeader h;
  h.model = cfg.model;
  h.world_size = c.size();
  for (Index step : {3, 4, 6}) {
    h.state.step = step;
    ck.save(h, dp, m, v);
  }
  const std::string newest = checkpoint_path(dir, 6);
  CHECK(ck.last_good() == "the last good checkpoint is step 6 (" + newest + ")");
  c.agree([&] {
    if (!c.root()) return;
    CHECK(list_checkpoints(dir) == std::vector<std::string>{checkpoint_path(dir, 4), newest});  // keep_checkpoints 2
    const auto back = read_checkpoint(newest, nullptr, true);
    CHECK(back.state.step == 6);
    Index wrong = 0;
    for (const auto& e : layout.entries)
      for (Index i = e.offset; i < e.offset + e.size(); ++i)
        wrong += back.params[std::size_t(i)] != 0.25f || back.exp_avg[std::size_t(i)] != 0.5f ||
                 back.exp_avg_sq[std::size_t(i)] != 0.75f;
    CHECK(wrong == 0);  // every rank's slice of the moments
  });
  // rank 0's writes: a failure ends every rank with the cause and the last good checkpoint
  // (on several ranks the message starts with the failing rank: "rank 0: ")
  CHECK_THROWS_WITH(ck.writing([] { throw Error("metrics.h5: No space left on device"); }),
                    Catch::EndsWith("metrics.h5: No space left on device; the last good checkpoint is step 6 (" + newest +
                                    ")"));
  // a checkpoint that cannot be written (its run_dir is a file): one line on every rank, and
  // the checkpoints already written stay as they were
  RunConfig bad = cfg;
  bad.run_dir = newest;
  CheckpointManager no(bad, c);
  h.state.step = 9;
  CHECK_THROWS_WITH(no.save(h, dp, m, v), Catch::Contains("step_00000009.h5") &&
                                                      Catch::Contains("no checkpoint of this run was written"));
  c.agree([&] {
    if (c.root()) CHECK(list_checkpoints(dir).size() == 2);
  });
  c.barrier();
  if (c.root()) std::filesystem::remove_all(dir);
}
