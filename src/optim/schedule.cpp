#include "optim/schedule.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace rewarm {

const std::vector<std::string>& Schedule::kinds() {
  static const std::vector<std::string> k{
      "constant", "cosine", "linear", "inverse_sqrt", "wsd", "infinite_cosine", "infinite_inv_sqrt", "infinite_linear"};
  return k;
}

void Schedule::validate(const std::string& where) const {
  if (std::find(kinds().begin(), kinds().end(), kind) == kinds().end()) {
    fail(where, "schedule.kind = \"" + kind + "\" is unknown" + did_you_mean(kind, kinds(), "", true));
  }
  if (total_steps < 1) fail(where, "schedule.total_steps must be at least 1");
  if (warmup_steps < 0 || warmup_steps > total_steps) fail(where, "schedule warmup must lie in [0, total_steps]");
  if (kind.rfind("infinite_", 0) == 0) {
    if (!(cooldown > 0 && cooldown <= constant && constant < 1))
      fail(where, "infinite schedules need 0 < schedule.cooldown <= schedule.constant < 1");
    if (const_lr <= 0) fail(where, "infinite schedules need schedule.const_lr > 0");
  }
  if (kind == "wsd" && !(decay >= 0 && decay <= 1)) fail(where, "schedule.decay must lie in [0, 1]");
  if (decay_steps && *decay_steps > total_steps - warmup_steps)
    fail(where, "schedule.decay_steps = " + std::to_string(*decay_steps) + " is longer than the steps after warmup (" +
                    std::to_string(total_steps - warmup_steps) + ")");
}

double Schedule::operator()(Index t, double lr, double min_lr) const {
  const double W = double(warmup_steps), E = double(total_steps), tt = double(t);
  const double pi = 3.14159265358979323846;
  if (t <= warmup_steps && warmup_steps > 0) return lr * tt / W;  // linear warmup from 0
  double r = lr;
  if (kind == "constant") {
    r = lr;
  } else if (kind == "cosine") {  // min + (max−min)·½(1 + cos(π·(t−W)/(E−W)))
    const double f = E > W ? std::min(1.0, (tt - W) / (E - W)) : 1.0;
    r = min_lr + (lr - min_lr) * 0.5 * (1 + std::cos(pi * f));
  } else if (kind == "linear") {  // max − (max−min)(t−W)/(E−W)
    const double f = E > W ? std::min(1.0, (tt - W) / (E - W)) : 1.0;
    r = lr - (lr - min_lr) * f;
  } else if (kind == "inverse_sqrt") {  // max·√(max(W,1)/t)
    r = lr * std::sqrt(std::max(W, 1.0) / tt);
  } else if (kind == "wsd") {  // max until (1−decay)·E (or E − decay_steps), then linear to min at E
    const double start = decay_steps ? double(total_steps - *decay_steps) : (1 - decay) * E;
    r = tt < start ? lr : lr - (lr - min_lr) * std::min(1.0, (tt - start) / std::max(E - start, 1.0));
  } else {  // infinite_* (Ibrahim et al. 2024): cooldown to c, constant c, exponential anneal to min
    const double n = tt - W, Tcd = cooldown * E, Tc = constant * E, c = const_lr;
    if (n <= Tcd) {
      const double x = n / Tcd;
      if (kind == "infinite_cosine") {
        r = c + (lr - c) * 0.5 * (1 + std::cos(pi * x));
      } else if (kind == "infinite_inv_sqrt") {  // max + (c−max)·g(x)/g(1), g(x) = 1/√(1+αx) − 1
        auto g = [&](double y) { return 1 / std::sqrt(1 + timescale * y) - 1; };
        r = lr + (c - lr) * g(x) / g(1);
      } else {
        r = lr + (c - lr) * x;
      }
    } else if (n <= Tc) {
      r = c;
    } else {  // c·(min/c)^((n−Tc)/(E−W−Tc))
      r = c * std::pow(min_lr / c, std::min(1.0, (n - Tc) / std::max(E - W - Tc, 1.0)));
    }
  }
  return std::max(r, min_lr);  // every schedule is clipped below at min after warmup
}

}  // namespace rewarm
