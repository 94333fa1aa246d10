// rewarm bench CONFIG [--steps N] [--json FILE]: training throughput (tokens/s), model FLOP/s,
// and MFU against the GEMM rate of the same GEMM interface, in the run's precision, measured in
// the same run on the same device; device operations per step and time per phase.
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "app/trainer.hpp"
#include "core/gemm.hpp"
#include "core/host_threads.hpp"
#include "core/op_counter.hpp"
#include "io/atomic_file.hpp"
#include "model/traffic.hpp"
#include "parallel/runtime.hpp"

namespace rewarm {

// Best of `reps` square GEMMs of size n: the peak that MFU is measured against. On data that is
// not constant (constant operands run faster on GPUs), and in bf16 from operands stored in bf16
// once, as the model's weights are (a conversion pass per call would lower the peak).
static double gemm_peak_flops(Index n, int reps, GemmPrecision precision) {
  Gemm<float> gemm(precision);
  View2<float> a("rewarm::bench_a", n, n), b("rewarm::bench_b", n, n), c("rewarm::bench_c", n, n);
  const bool bf16 = precision == GemmPrecision::bf16;
  View1<Bf16Storage> a16("rewarm::bench_a16", bf16 ? n * n : 0), b16("rewarm::bench_b16", bf16 ? n * n : 0);
  float* pa = a.data();
  float* pb = b.data();
  Kokkos::parallel_for(
      "rewarm::bench_gemm_fill", Range(0, n * n), KOKKOS_LAMBDA(Index i) {
        // two hashes of i (multiplicative, Knuth's and MurmurHash's constants) into [-0.5, 0.5)
        const std::uint32_t u = std::uint32_t(i) * 2654435761u, v = (std::uint32_t(i) ^ 0x5bd1e995u) * 2246822519u;
        pa[i] = float(u >> 8) * 0x1p-24f - 0.5f;
        pb[i] = float(v >> 8) * 0x1p-24f - 0.5f;
        if (bf16) a16(i) = to_bf16_storage(pa[i]), b16(i) = to_bf16_storage(pb[i]);
      });
  const Bf16Matrix A16 = bf16 ? Bf16Matrix{as_matrix(a16.data(), n, n)} : Bf16Matrix{},
                   B16 = bf16 ? Bf16Matrix{as_matrix(b16.data(), n, n)} : Bf16Matrix{};
  double best = 1e30;
  for (int r = 0; r <= reps; ++r) {  // the first is a warm-up
    kx::fence("rewarm::bench_gemm_start");
    const auto t0 = std::chrono::steady_clock::now();
    if (bf16)
      gemm('N', 'T', 1, A16, B16, 0, as_matrix(c));
    else
      gemm('N', 'T', 1, as_matrix(a), as_matrix(b), 0, as_matrix(c));
    kx::fence("rewarm::bench_gemm_end");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::min(best, s);
  }
  return 2.0 * double(n) * double(n) * double(n) / best;
}

static void read_only(const RunConfig& cfg) {  // the data path alone: HDF5 window reads, range checks
  TokenShard shard(cfg.data.train.at(0).path);
  const Index T = cfg.data.seq_len, n = shard.num_windows(T);
  std::vector<std::int32_t> w(std::size_t(T + 1));
  const auto t0 = std::chrono::steady_clock::now();
  for (Index k = 0; k < n; ++k) shard.read_window(k, T, cfg.model.vocab_size, w.data());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double bytes = double(n * T) * (shard.vocab_size() <= 65536 ? 2 : 4);
  std::printf("read %lld windows of %lld tokens (%.2f GB of token data) in %.2f s: %.0f MB/s\n",
              static_cast<long long>(n), static_cast<long long>(T + 1), bytes / 1e9, s, bytes / 1e6 / s);
}

void register_bench(CLI::App& app, const LaunchOptions& launch) {
  auto* cmd = app.add_subcommand("bench", "training tokens/s, model FLOP/s and MFU against a measured GEMM peak");
  auto config = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto steps = std::make_shared<Index>(5);
  // a GPU's GEMM of n = 2048 lasts some 20 µs, too short to reach its rate; a CPU's 8192 a minute
  auto gemm_n = std::make_shared<Index>(kHostMemory ? 2048 : 8192);
  auto json_path = std::make_shared<std::string>();
  cmd->add_option("config", *config, "run config (TOML); its model and data are used, nothing is written")->required();
  cmd->add_option("--set", *sets, "override a config key: section.key=value (repeatable)");
  cmd->add_option("--steps", *steps, "timed optimizer steps (after one warm-up step)")->capture_default_str();
  cmd->add_option("--gemm-size", *gemm_n, "size n of the n×n×n GEMM that measures the peak")->capture_default_str();
  cmd->add_option("--json", *json_path, "also write the results to this file (JSON)");
  auto read_only_flag = std::make_shared<bool>(false);
  cmd->add_flag("--read-only", *read_only_flag, "only time reading every window of the first [[data.train]] set, in order");
  cmd->callback([=, &launch] {
    auto cfg = load_run_config(*config, *sets);
    if (*read_only_flag) return read_only(cfg);
    cfg.run_dir = "";  // a benchmark resumes nothing and writes nothing
    run_on_device(launch.kokkos_args, [&](Comm& comm) {
      OpCounter ops;  // before the model: its allocations count toward peak memory
      std::unique_ptr<Trainer> trainer;
      comm.agree([&] {
        comm.set_gpu_aware(cfg.parallel.gpu_aware_mpi);
        trainer = std::make_unique<Trainer>(cfg, comm, Trainer::Purpose::bench);
      });
      const auto& c = trainer->config();
      const auto precision = gemm_precision(c.precision.gemm, c.source);
      const double peak = comm.sum(gemm_peak_flops(*gemm_n, 3, precision));  // every rank's GPU/cores
      ops.reset_peak();  // the peak GEMM's matrices are gone: from here, the training step's memory
      trainer->step();   // warm-up

      // Device operations of one step, counted on a step of its own (the count does not depend
      // on timing), then the timed steps, then the phases (fenced, so timed apart).
      ops.reset_counts();
      const Index gemms0 = trainer->model().gemm().calls();
      const std::int64_t sent0 = trainer->communication_bytes();
      trainer->step();
      const auto counts = ops.counts();
      const Index gemms = trainer->model().gemm().calls() - gemms0;
      const double sent = comm.sum(double(trainer->communication_bytes() - sent0)) / comm.size();  // rank mean
      comm.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      double data = 0, allreduce = 0;
      for (Index s = 0; s < *steps; ++s) {
        const auto r = trainer->step();
        data += r.data_seconds, allreduce += r.allreduce_seconds;
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      trainer->set_profile(true);
      const auto p = trainer->step();
      trainer->set_profile(false);
      ops.time_kernels(true);  // one step more, every kernel fenced and timed
      const auto k0 = std::chrono::steady_clock::now();
      trainer->step();
      const double kernel_step = std::chrono::duration<double>(std::chrono::steady_clock::now() - k0).count();
      ops.time_kernels(false);
      const auto kernel_times = ops.kernel_seconds();
      const double N = comm.size();
      data = comm.sum(data) / N, allreduce = comm.sum(allreduce) / N;  // rank means
      const std::int64_t peak_memory = std::int64_t(comm.sum(double(ops.peak_bytes())) / N);
      if (!comm.root()) return;

      const double tokens = double(*steps * c.tokens_per_step()), tps = tokens / secs;
      const double fpt = training_flops_per_token(c.model, c.data.seq_len), model_flops = tps * fpt;
      const double micro = double(trainer->micro_batches_per_step());
      const double step_ops = double(counts.kernels + counts.copies + gemms);
      std::printf("device          %s, %d rank%s, GEMMs in %s\n", device_description().c_str(), comm.size(),
                  comm.size() > 1 ? "s" : "", to_string(precision).c_str());
      std::printf("compute         %s\n", compute_description().c_str());
      std::printf("attention       %s\n", trainer->attention().line().c_str());
      std::printf("gemm peak       %.1f GFLOP/s (%s, n = %lld, summed over ranks)\n", peak / 1e9,
                  to_string(precision).c_str(), static_cast<long long>(*gemm_n));
      std::printf(
          "model           hidden %lld, layers %lld, heads %lld, vocab %lld; seq_len %lld, micro_batch %lld, "
          "global_batch %lld\n",
          static_cast<long long>(c.model.hidden_size), static_cast<long long>(c.model.num_hidden_layers),
          static_cast<long long>(c.model.num_attention_heads), static_cast<long long>(c.model.vocab_size),
          static_cast<long long>(c.data.seq_len), static_cast<long long>(c.data.micro_batch),
          static_cast<long long>(c.data.global_batch));
      std::printf("throughput      %.0f tokens/s over %lld steps (%.3f s/step), %.0f tokens/s per rank\n", tps,
                  static_cast<long long>(*steps), secs / double(*steps), tps / N);
      std::printf("model flops     %.2f GFLOP/s (%.3g FLOP/token)\n", model_flops / 1e9, fpt);
      std::printf("MFU             %.1f%% of the measured GEMM peak\n", 100 * model_flops / peak);
      std::printf("data loading    %.2f%% of step time\n", 100 * data / secs);
      static const char* const stages[] = {"all-reduce", "ZeRO-1: reduce-scatter + all-gather",
                                           "ZeRO-2: reduce-scatter by layer + all-gather",
                                           "ZeRO-3: reduce-scatter and parameter gathers by layer"};
      std::printf("all-reduce      %.2f%% of step time (gradients over %d ranks, %s): %.1f MB per step per rank\n",
                  100 * allreduce / secs, comm.size(), stages[c.parallel.zero], sent / 1e6);
      std::printf("phases          forward %.3f s, backward %.3f s, all-reduce %.3f s, optimizer %.3f s, data %.3f s "
                  "(one step, fenced)\n",
                  p.forward_seconds, p.backward_seconds, p.allreduce_seconds, p.optimizer_seconds, p.data_seconds);
      std::printf("device ops      %.0f per step: %lld kernels, %lld GEMM calls, %lld copies, %lld fences; %.0f per "
                  "micro-batch\n",
                  step_ops, static_cast<long long>(counts.kernels), static_cast<long long>(gemms),
                  static_cast<long long>(counts.copies), static_cast<long long>(counts.fences), step_ops / micro);
      double in_kernels = 0;
      for (const auto& [label, t] : kernel_times) in_kernels += t;
      std::string top;
      for (std::size_t i = 0; i < kernel_times.size() && i < 6; ++i) {
        char item[160];
        std::snprintf(item, sizeof item, "%s%s %.1f%%", i ? ", " : "", kernel_times[i].first.c_str(),
                      100 * kernel_times[i].second / kernel_step);
        top += item;
      }
      std::printf("kernels         %.1f%% of a step (one step, each kernel fenced; GEMMs not included): %s\n",
                  100 * in_kernels / kernel_step, top.c_str());
      const auto traffic = estimate_traffic(c.model, c.data.micro_batch, c.data.seq_len, trainer->model_options());
      std::printf("traffic         %.2f GB per micro-batch by estimate (forward %.2f, backward %.2f; attention %.2f): "
                  "%.0f FLOP per byte\n",
                  traffic.total() / 1e9, traffic.forward / 1e9, traffic.backward / 1e9, traffic.attention / 1e9,
                  fpt * double(c.data.micro_batch * c.data.seq_len) / traffic.total());
      std::printf("memory          %.1f MiB peak in Kokkos allocations; AdamW state %.1f MiB per rank\n",
                  double(peak_memory) / (1 << 20), double(trainer->optimizer_bytes()) / (1 << 20));
      if (json_path->empty()) return;
      const nlohmann::json j = {
          {"device", device_description()},
          {"compute", compute_description()},
          {"ranks", comm.size()},
          {"precision", to_string(precision)},
          {"attention", trainer->attention().name()},
          {"attention_why", trainer->attention().why},
          {"model", c.model.to_hf_json()},
          {"parameters", ParamLayout(c.model).parameters()},
          {"seq_len", c.data.seq_len},
          {"micro_batch", c.data.micro_batch},
          {"global_batch", c.data.global_batch},
          {"tokens_per_second", tps},
          {"tokens_per_second_per_rank", tps / N},
          {"model_flops_per_token", fpt},
          {"achieved_flops", model_flops},
          {"peak_flops", peak},
          {"gemm_size", *gemm_n},
          {"mfu", model_flops / peak},
          {"peak_memory_bytes", peak_memory},
          {"bytes_per_micro_batch", traffic.total()},
          {"attention_bytes_per_micro_batch", traffic.attention},
          {"kernels_per_step", counts.kernels},
          {"gemm_calls_per_step", gemms},
          {"copies_per_step", counts.copies},
          {"fences_per_step", counts.fences},
          {"device_ops_per_micro_batch", step_ops / micro},
          {"step_seconds", secs / double(*steps)},
          {"zero", c.parallel.zero},
          {"communication_bytes_per_step", sent},
          {"kernel_seconds", nlohmann::json(std::map<std::string, double>(kernel_times.begin(), kernel_times.end()))},
          {"kernel_step_seconds", kernel_step},
          {"phases",
           {{"forward", p.forward_seconds},
            {"backward", p.backward_seconds},
            {"allreduce", p.allreduce_seconds},
            {"optimizer", p.optimizer_seconds},
            {"data", p.data_seconds}}}};
      write_text_file(*json_path, j.dump(2) + "\n");
    });
  });
}

}  // namespace rewarm
