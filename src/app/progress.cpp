#include "app/progress.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace rewarm {

Progress::Progress(Index total_steps, double flops_per_token, std::size_t window)
    : total_(total_steps), flops_per_token_(flops_per_token), window_(window) {}

void Progress::step_done(double seconds) {
  recent_.push_back(seconds);
  recent_sum_ += seconds;
  if (recent_.size() > window_) {
    recent_sum_ -= recent_.front();
    recent_.pop_front();
  }
}

double Progress::recent_step_seconds() const { return recent_.empty() ? 0 : recent_sum_ / double(recent_.size()); }

double Progress::eta_seconds(Index step) const { return double(std::max<Index>(total_ - step, 0)) * recent_step_seconds(); }

std::string Progress::step_of_total(Index step) const {
  const int width = int(std::to_string(total_).size());
  char s[64];
  std::snprintf(s, sizeof s, "%*lld/%lld (%d%%)", width, static_cast<long long>(step), static_cast<long long>(total_),
                total_ > 0 ? int(100 * step / total_) : 100);
  return s;
}

std::string Progress::rates(double tokens, double seconds) const {
  const double tps = seconds > 0 ? tokens / seconds : 0, flops = tps * flops_per_token_;
  const bool tera = flops >= 1e12;
  char s[96];
  std::snprintf(s, sizeof s, "%s tok/s | %.3g %s", format_si(tps).c_str(), tera ? flops / 1e12 : flops / 1e9,
                tera ? "TFLOP/s" : "GFLOP/s");
  return s;
}

std::string format_duration(double seconds) {
  const long long t = std::llround(std::max(seconds, 0.0));
  char s[32];
  if (t < 60) {
    std::snprintf(s, sizeof s, "%llds", t);
  } else if (t < 3600) {
    std::snprintf(s, sizeof s, "%lldm%02llds", t / 60, t % 60);
  } else if (t < 86400) {
    std::snprintf(s, sizeof s, "%lldh%02lldm", t / 3600, t % 3600 / 60);
  } else {
    std::snprintf(s, sizeof s, "%lldd%02lldh", t / 86400, t % 86400 / 3600);
  }
  return s;
}

std::string format_si(double v) {
  char s[32];
  if (v >= 1e9)
    std::snprintf(s, sizeof s, "%.3gG", v / 1e9);
  else if (v >= 1e6)
    std::snprintf(s, sizeof s, "%.3gM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(s, sizeof s, "%.3gk", v / 1e3);
  else
    std::snprintf(s, sizeof s, "%.3g", v);
  return s;
}

}  // namespace rewarm
