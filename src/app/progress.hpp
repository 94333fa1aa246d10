// What a training log line says beyond the step's own numbers: the step out of the total, the
// throughput in tokens and model FLOPs, the time elapsed and the time left. Time left comes from
// the recent steps' own times (evaluations and checkpoints excluded), so a pause does not skew it.
#pragma once
#include <chrono>
#include <cstddef>
#include <deque>
#include <string>

#include "core/index.hpp"

namespace rewarm {

class Progress {
 public:
  // total_steps: the schedule's; flops_per_token: training FLOPs of one token (PaLM convention).
  Progress(Index total_steps, double flops_per_token, std::size_t window = 50);
  void step_done(double seconds);  // the time step() took
  double recent_step_seconds() const;  // mean over the window; 0 before the first step
  double eta_seconds(Index step) const;  // the remaining steps at the recent pace
  // " 120/400 (30%)" — the step padded to the total's width.
  std::string step_of_total(Index step) const;
  // "41.7k tok/s | 0.9 TFLOP/s" for a step of `tokens` that took `seconds`.
  std::string rates(double tokens, double seconds) const;

 private:
  Index total_;
  double flops_per_token_;
  std::size_t window_;
  std::deque<double> recent_;
  double recent_sum_ = 0;
};

// Seconds from t0 to now (the steady clock: the log's times).
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string format_duration(double seconds);  // "45s", "1m02s", "3h04m", "2d03h"
std::string format_si(double value);          // "41.7k", "1.25M", "950"

}  // namespace rewarm
