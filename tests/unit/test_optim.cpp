// LR schedules at hand-computed points; AdamW and clipping against a naive double loop.
#include "optim/adamw.hpp"
#include "optim/schedule.hpp"
#include "testing.hpp"

#include <functional>

using namespace rewarm;
using namespace rewarm::testing;

// lr 1.0, min_lr 0.1
static std::function<double(Index)> make(const std::string& kind) {
  Schedule s;
  s.kind = kind;
  s.warmup_steps = 10;
  s.total_steps = 110;
  s.const_lr = 0.5;
  s.cooldown = 0.2;
  s.constant = 0.6;
  s.decay = 0.2;
  s.timescale = 10;
  s.validate("test");
  return [s](Index t) { return s(t, 1.0, 0.1); };
}

TEST_CASE("schedules follow the formulas of docs/numerics.md", "[optim]") {
  for (const auto& k : Schedule::kinds()) {
    auto s = make(k);
    CHECK(s(5) == Approx(0.5));  // warmup: lr·t/W
    CHECK(s(10) == Approx(1.0));
  }
  CHECK(make("constant")(100) == Approx(1.0));
  CHECK(make("cosine")(60) == Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.5))));
  CHECK(make("cosine")(110) == Approx(0.1));
  CHECK(make("linear")(35) == Approx(1.0 - 0.9 * 0.25));
  CHECK(make("inverse_sqrt")(40) == Approx(std::sqrt(10.0 / 40)));
  CHECK(make("inverse_sqrt")(4000) == Approx(0.1));  // clipped at min
  CHECK(make("wsd")(87) == Approx(1.0));             // decay starts at 0.8·110 = 88
  CHECK(make("wsd")(99) == Approx(1.0 - 0.9 * 11 / 22.0));
  CHECK(make("infinite_cosine")(21) == Approx(0.5 + 0.5 * 0.5 * (1 + std::cos(M_PI * 11 / 22.0))));
  CHECK(make("infinite_linear")(21) == Approx(1.0 - 0.5 * 0.5));
  auto g = [](double x) { return 1 / std::sqrt(1 + 10 * x) - 1; };
  CHECK(make("infinite_inv_sqrt")(21) == Approx(1.0 - 0.5 * g(0.5) / g(1)));
  CHECK(make("infinite_cosine")(60) == Approx(0.5));  // constant phase: n = 50 ≤ Tc = 66
  const double n = 90, Tc = 66;
  CHECK(make("infinite_cosine")(100) == Approx(0.5 * std::pow(0.2, (n - Tc) / (110 - 10 - Tc))));
  CHECK(make("infinite_linear")(110) == Approx(0.1));
  Schedule typo;
  typo.kind = "cosin";
  CHECK_THROWS_WITH(typo.validate("run.toml"), Catch::Contains("did you mean \"cosine\""));
}

TEST_CASE("AdamW with decay groups and clipping matches a naive loop", "[optim]") {
  const Index n = 37, decay_end = 20;
  AdamW o;
  o.beta1 = 0.9;
  o.beta2 = 0.95;
  o.eps = 1e-8;
  o.weight_decay = 0.1;
  auto p = random_view(n, 1), m = View1<double>("m", n), v = View1<double>("v", n);
  auto P = to_vec(p);
  std::vector<double> M(n, 0), Vv(n, 0);
  for (Index t = 1; t <= 3; ++t) {
    auto g = random_view(n, 10 + unsigned(t), -3, 3);
    auto G = to_vec(g);
    const double norm = global_norm(g);
    double ref_norm = 0;
    for (double x : G) ref_norm += x * x;
    ref_norm = std::sqrt(ref_norm);
    CHECK(norm == Approx(ref_norm).epsilon(1e-14));
    const double coef = clip_by_global_norm(g, norm, 1.0);
    CHECK(coef == Approx(1.0 / (ref_norm + 1e-6)));
    const double lr = 1e-2 * double(t);
    adamw_step(p, g, m, v, decay_end, o, lr, t);
    for (Index i = 0; i < n; ++i) {
      const double gi = G[i] * coef;
      if (i < decay_end) P[i] *= 1 - lr * o.weight_decay;
      M[i] = o.beta1 * M[i] + (1 - o.beta1) * gi;
      Vv[i] = o.beta2 * Vv[i] + (1 - o.beta2) * gi * gi;
      const double mh = M[i] / (1 - std::pow(o.beta1, t)), vh = Vv[i] / (1 - std::pow(o.beta2, t));
      P[i] -= lr * mh / (std::sqrt(vh) + o.eps);
    }
  }
  auto got = to_vec(p);
  for (Index i = 0; i < n; ++i) CHECK(got[i] == Approx(P[i]).epsilon(1e-12));
  // clipping is off when the norm is below the threshold
  auto g = random_view(n, 99, -1e-3, 1e-3);
  CHECK(clip_by_global_norm(g, global_norm(g), 1.0) == 1.0);
}
