#include "core/op_counter.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <cstring>

#include "core/error.hpp"
#include "core/types.hpp"

namespace rewarm {
namespace {

// Kokkos calls plain function pointers: the counts live here, for the one counter alive.
std::atomic<std::int64_t> kernels{0}, copies{0}, fences{0}, live_bytes{0}, peak{0};
std::atomic<bool> installed{false};
// Kernel timing (the launching thread alone calls these): the open kernel's label and start.
bool timing = false;
std::map<std::string, double> seconds;
std::string open_label;
std::chrono::steady_clock::time_point open_start;

void on_kernel(const char* label, const std::uint32_t, std::uint64_t* id) {
  ++kernels;
  *id = 0;
  if (!timing) return;
  kx::fence("rewarm::time_kernels");  // what came before is not this kernel's
  open_label = label, open_start = std::chrono::steady_clock::now();
}
void on_kernel_end(std::uint64_t) {
  if (!timing || open_label.empty()) return;
  kx::fence("rewarm::time_kernels");
  seconds[open_label] += std::chrono::duration<double>(std::chrono::steady_clock::now() - open_start).count();
  open_label.clear();
}
void on_copy(Kokkos::Tools::SpaceHandle, const char*, const void*, Kokkos::Tools::SpaceHandle, const char*, const void*,
             std::uint64_t) {
  ++copies;
}
void on_fence(const char*, const std::uint32_t, std::uint64_t* id) {
  ++fences;
  *id = 0;
}
void on_fence_end(std::uint64_t) {}
// Device memory only (the default memory space; host mirrors and pinned buffers are not counted),
// and rewarm's own: Kokkos' team scratch ("Kokkos::Serial::scratch_mem", made at the first team
// launch; a few MiB on GPUs) is the runtime's, as the CUDA context is, and not in the estimates.
bool counted(const Kokkos::Tools::SpaceHandle& h, const char* label) {
  return std::strcmp(h.name, MemSpace::name()) == 0 && std::strncmp(label, "Kokkos::", 8) != 0;
}

void on_alloc(const Kokkos::Tools::SpaceHandle h, const char* label, const void*, const std::uint64_t size) {
  if (!counted(h, label)) return;
  const auto now = live_bytes += std::int64_t(size);
  for (auto p = peak.load(); now > p && !peak.compare_exchange_weak(p, now);) {
  }
}
void on_free(const Kokkos::Tools::SpaceHandle h, const char* label, const void*, const std::uint64_t size) {
  if (counted(h, label)) live_bytes -= std::int64_t(size);
}

}  // namespace

OpCounter::OpCounter() {
  if (installed.exchange(true)) throw Error("only one OpCounter may be alive");
  kernels = copies = fences = live_bytes = peak = 0;
  namespace tx = Kokkos::Tools::Experimental;
  tx::set_begin_parallel_for_callback(on_kernel);
  tx::set_begin_parallel_reduce_callback(on_kernel);
  tx::set_begin_parallel_scan_callback(on_kernel);
  tx::set_end_parallel_for_callback(on_kernel_end);
  tx::set_end_parallel_reduce_callback(on_kernel_end);
  tx::set_end_parallel_scan_callback(on_kernel_end);
  tx::set_begin_deep_copy_callback(on_copy);
  tx::set_begin_fence_callback(on_fence);
  tx::set_end_fence_callback(on_fence_end);
  tx::set_allocate_data_callback(on_alloc);
  tx::set_deallocate_data_callback(on_free);
}

OpCounter::~OpCounter() {
  namespace tx = Kokkos::Tools::Experimental;
  tx::set_begin_parallel_for_callback(nullptr);
  tx::set_begin_parallel_reduce_callback(nullptr);
  tx::set_begin_parallel_scan_callback(nullptr);
  tx::set_end_parallel_for_callback(nullptr);
  tx::set_end_parallel_reduce_callback(nullptr);
  tx::set_end_parallel_scan_callback(nullptr);
  tx::set_begin_deep_copy_callback(nullptr);
  tx::set_begin_fence_callback(nullptr);
  tx::set_end_fence_callback(nullptr);
  tx::set_allocate_data_callback(nullptr);
  tx::set_deallocate_data_callback(nullptr);
  timing = false;
  installed = false;
}

void OpCounter::time_kernels(bool on) {
  timing = on;
  if (on) seconds.clear();
}

std::vector<std::pair<std::string, double>> OpCounter::kernel_seconds() const {
  std::vector<std::pair<std::string, double>> v(seconds.begin(), seconds.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return v;
}

OpCounter::Counts OpCounter::counts() const { return {kernels.load(), copies.load(), fences.load()}; }
void OpCounter::reset_counts() { kernels = copies = fences = 0; }
std::int64_t OpCounter::peak_bytes() const { return peak.load(); }
void OpCounter::reset_peak() { peak = live_bytes.load(); }

}  // namespace rewarm
