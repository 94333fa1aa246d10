// Run-directory I/O costs (bench/RESULTS.md): the time to log one metrics record when the file
// already holds 10^3 and 10^5 records, and the time to write, read and verify a checkpoint the
// size of Pythia-160M's. Usage: bench_io DIR [--metrics-only]   (DIR: scratch on the disk to measure)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/checkpoint.hpp"
#include "io/hdf5.hpp"
#include "io/metrics.hpp"
#include "model/param_layout.hpp"

using namespace rewarm;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A metrics file holding n train records, written the way every rewarm version reads it.
static void prefill(const std::string& path, Index n) {
  h5::File f(path, h5::File::Create);
  f.set_attr("format", std::string("rewarm-metrics"));
  std::vector<std::int64_t> steps(static_cast<std::size_t>(n));
  std::vector<double> values(std::size_t(n), 1.0);
  for (Index i = 0; i < n; ++i) steps[std::size_t(i)] = i + 1;
  const std::vector<std::int64_t> shape{n};
  f.write("/train/step", steps.data(), shape, 1024);
  f.write("/train/tokens", steps.data(), shape, 1024);
  for (const char* c : {"lr", "loss", "grad_norm", "tokens_per_second", "seconds", "samples_set"})
    f.write(std::string("/train/") + c, values.data(), shape, 1024);
}

// Bytes this process has written so far (/proc/self/io wchar: what write(2) calls were given).
static double bytes_written() {
  std::ifstream io("/proc/self/io");
  std::string key;
  double value = 0;
  while (io >> key >> value)
    if (key == "wchar:") return value;
  return 0;
}

static void bench_metrics(const std::string& dir) {
  for (Index n : {Index(1000), Index(100000)}) {
    const std::string path = dir + "/metrics.h5";
    fs::remove(path);
    prefill(path, n);
    Metrics m(path, "run_dir = \"bench\"\n", Metrics::Run{"bench", 1, "fp32"}, n, {"set"}, {});
    std::vector<double> ms;
    const int records = 100;
    const double w0 = bytes_written();
    for (int i = 1; i <= records; ++i) {
      const auto t0 = Clock::now();
      m.log_train({n + i, n + i, 1e-3, 2.0, 0.5, 1e4, double(i)}, {{"set", n + i}});
      ms.push_back(1e3 * seconds_since(t0));
    }
    const double kb = (bytes_written() - w0) / records / 1e3;
    std::sort(ms.begin(), ms.end());
    std::printf("metrics: at %lld records (8 series): %.3f ms per record (median of %d; max %.3f), %.1f kB written\n",
                static_cast<long long>(n), ms[ms.size() / 2], records, ms.back(), kb);
  }
}

// The checkpoint's datasets as rewarm wrote them before checksums: contiguous, unfiltered.
static void write_unchecksummed(const std::string& path, const CheckpointData& c) {
  h5::File f(path, h5::File::Create);
  f.set_attr("format", std::string("rewarm-checkpoint"));
  f.set_attr("step", std::int64_t(1));
  f.set_attr("tokens_seen", std::int64_t(0));
  f.set_attr("model_config", c.model.to_hf_json().dump(2));
  for (const auto& e : ParamLayout(c.model).entries) {
    f.write("/model/" + e.name, c.params.data() + e.offset, e.shape);
    f.write("/optimizer/exp_avg/" + e.name, c.exp_avg.data() + e.offset, e.shape);
    f.write("/optimizer/exp_avg_sq/" + e.name, c.exp_avg_sq.data() + e.offset, e.shape);
  }
}

// Seconds to read the whole checkpoint; `cold`: its pages dropped from the page cache first.
static double read_seconds(const std::string& path, bool cold) {
  if (cold) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  const auto t0 = Clock::now();
  const auto back = read_checkpoint(path, nullptr, true);
  return seconds_since(t0);
}

static void bench_checkpoint(const std::string& dir) {
  ModelConfig model;  // Pythia-160M
  model.vocab_size = 50304, model.hidden_size = 768, model.num_hidden_layers = 12;
  model.num_attention_heads = 12, model.intermediate_size = 3072, model.max_position_embeddings = 2048;
  const ParamLayout layout(model);
  CheckpointData c;
  c.model = model;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (auto* v : {&c.params, &c.exp_avg, &c.exp_avg_sq}) {
    v->resize(std::size_t(layout.total));
    for (auto& x : *v) x = normal(rng);
  }
  const std::string checked = dir + "/step_00000001.h5", plain = dir + "/plain.h5";
  const double gb = 12.0 * double(layout.total) / 1e9;
  std::printf("checkpoint: Pythia-160M, %lld parameters with both AdamW moments, %.2f GB\n",
              static_cast<long long>(layout.total), gb);
  auto t0 = Clock::now();
  write_checkpoint(checked, c);
  const double w_checked = seconds_since(t0);
  t0 = Clock::now();
  write_unchecksummed(plain, c);
  const int fd = ::open(plain.c_str(), O_RDONLY);  // on disk, as write_checkpoint leaves its file
  ::fsync(fd);
  ::close(fd);
  const double w_plain = seconds_since(t0);
  std::printf("  write, to disk: checksummed %.2f s, unchecksummed %.2f s\n", w_checked, w_plain);
  for (const bool cold : {false, true}) {
    read_seconds(checked, false), read_seconds(plain, false);  // warm the cache (or the allocator) once
    std::vector<double> a, b;  // interleaved rounds, medians: this VM's disk drifts
    for (int round = 0; round < 3; ++round) a.push_back(read_seconds(checked, cold)), b.push_back(read_seconds(plain, cold));
    std::sort(a.begin(), a.end()), std::sort(b.begin(), b.end());
    std::printf("  read, %s (median of 3): checksummed %.2f s (%.2f GB/s), unchecksummed %.2f s (%.2f GB/s): "
                "verification %+.2f s (%+.0f%%)\n",
                cold ? "from disk" : "from the page cache", a[1], gb / a[1], b[1], gb / b[1], a[1] - b[1],
                100.0 * (a[1] / b[1] - 1));
  }
  if (!std::getenv("REWARM_BENCH_KEEP")) fs::remove(checked), fs::remove(plain);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_io DIR [--metrics-only]\n");
    return 2;
  }
  const std::string dir = argv[1];
  fs::create_directories(dir);
  bench_metrics(dir);
  if (argc < 3 || std::string(argv[2]) != "--metrics-only") bench_checkpoint(dir);
}
