// Every layer's backward against central finite differences in double precision, on odd sizes.
#include <cstring>

#include "model/layers/attention.hpp"
#include "model/layers/cross_entropy.hpp"
#include "model/layers/embedding.hpp"
#include "model/layers/gelu.hpp"
#include "model/layers/layernorm.hpp"
#include "model/layers/linear.hpp"
#include "model/layers/rotary.hpp"
#include "testing.hpp"

using namespace rewarm;
using namespace rewarm::layers;
using namespace rewarm::testing;

TEST_CASE("linear backward matches finite differences", "[layers]") {
  std::mt19937 rng(7);
  Gemm<double> gemm;
  for (int trial = 0; trial < 3; ++trial) {  // random odd shapes
    const Index N = 1 + rng() % 9, in = 1 + rng() % 9, out = 1 + rng() % 9;
    INFO("N=" << N << " in=" << in << " out=" << out);
    auto x = random_view(N * in, 1), W = random_view(out * in, 2), b = random_view(out, 3), R = random_view(N * out, 4);
    View1<double> y("y", N * out), dx("dx", N * in), dW("dW", out * in), db("db", out);
    auto loss = [&] {
      linear_forward(gemm, mat(y, N, out), mat(x, N, in), mat(W, out, in), flat(b));
      return dot(y, R);
    };
    loss();
    linear_backward(gemm, mat(dx, N, in), mat(dW, out, in), flat(db), mat(R, N, out), mat(x, N, in), mat(W, out, in),
                    column_scratch<double>(N, out));
    CHECK(max_fd_error(loss, {{x, dx}, {W, dW}, {b, db}}) < 1e-7);
    // the forward value itself against a naive loop
    auto xs = to_vec(x), Ws = to_vec(W), bs = to_vec(b), ys = to_vec(y);
    for (Index n = 0; n < N; ++n)
      for (Index o = 0; o < out; ++o) {
        double s = bs[o];
        for (Index i = 0; i < in; ++i) s += xs[n * in + i] * Ws[o * in + i];
        CHECK(ys[n * out + o] == Approx(s).epsilon(1e-12));
      }
  }
}

TEST_CASE("layernorm backward matches finite differences", "[layers]") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 3; ++trial) {  // random odd shapes, d = 1 included
    const Index N = 1 + rng() % 6, d = trial == 0 ? 1 : 2 + rng() % 11;
    INFO("N=" << N << " d=" << d);
    auto x = random_view(N * d, 5 + trial, -2, 2), w = random_view(d, 6 + trial, 0.5, 1.5),
         b = random_view(d, 7 + trial), R = random_view(N * d, 8 + trial);
    View1<double> y("y", N * d), mean("mean", N), rstd("rstd", N), dx("dx", N * d), dw("dw", d), db("db", d);
    auto loss = [&] {
      layernorm_forward(mat(y, N, d), flat(mean), flat(rstd), mat(x, N, d), flat(w), flat(b), 1e-5);
      return dot(y, R);
    };
    loss();
    layernorm_backward(mat(dx, N, d), flat(dw), flat(db), mat(R, N, d), mat(x, N, d), flat(mean), flat(rstd), flat(w),
                       column_scratch<double>(N, d));
    CHECK(max_fd_error(loss, {{x, dx}, {w, dw}, {b, db}}) < 1e-7);
    // naive reference: (x − mean) / sqrt(var + eps) · w + b, row by row
    auto xs = to_vec(x), ys = to_vec(y), ws = to_vec(w), bs = to_vec(b);
    for (Index n = 0; n < N; ++n) {
      double mu = 0, var = 0;
      for (Index j = 0; j < d; ++j) mu += xs[n * d + j] / d;
      for (Index j = 0; j < d; ++j) var += (xs[n * d + j] - mu) * (xs[n * d + j] - mu) / d;
      for (Index j = 0; j < d; ++j)
        CHECK(ys[n * d + j] == Approx((xs[n * d + j] - mu) / std::sqrt(var + 1e-5) * ws[j] + bs[j]).epsilon(1e-12));
    }
  }
}

TEST_CASE("gelu (erf and tanh) backward matches finite differences", "[layers]") {
  for (bool tanh_approx : {false, true}) {
    const Index n = 11;
    auto x = random_view(n, 9, -4, 4), R = random_view(n, 10), y = View1<double>("y", n), dx = View1<double>("dx", n);
    auto loss = [&] {
      gelu_forward(flat(y), flat(x), tanh_approx);
      return dot(y, R);
    };
    loss();
    gelu_backward(flat(dx), flat(R), flat(x), tanh_approx);
    CHECK(max_fd_error(loss, {{x, dx}}) < 1e-7);
  }
  // reference values: torch.nn.functional.gelu(1.0) and gelu(1.0, approximate="tanh")
  CHECK(gelu(1.0, false) == Approx(0.8413447460685429).epsilon(1e-14));
  CHECK(gelu(1.0, true) == Approx(0.8411919906082768).epsilon(1e-14));
  // and the formulas over a range, with their derivatives written out independently
  const double c = std::sqrt(2 / M_PI);
  for (double x = -6; x <= 6; x += 0.37) {
    INFO("x = " << x);
    const double u = c * (x + 0.044715 * x * x * x), t = std::tanh(u);
    CHECK(gelu(x, true) == Approx(0.5 * x * (1 + t)).epsilon(1e-14).margin(1e-300));
    CHECK(gelu_grad(x, true) ==
          Approx(0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)).epsilon(1e-13).margin(1e-15));
    const double phi = std::exp(-x * x / 2) / std::sqrt(2 * M_PI), Phi = 0.5 * std::erfc(-x / std::sqrt(2.0));
    CHECK(gelu(x, false) == Approx(x * Phi).epsilon(1e-13).margin(1e-15));
    CHECK(gelu_grad(x, false) == Approx(Phi + x * phi).epsilon(1e-13).margin(1e-15));
  }
}

TEST_CASE("rotary matches the HF formula and its backward is the transpose rotation", "[layers]") {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 4; ++trial) {  // random shapes; rd from 0 (no rotary) to hd
    const Index B = 1 + rng() % 3, T = 1 + rng() % 9, H = 1 + rng() % 3, hd = 2 * (1 + rng() % 4);
    const Index rd = 2 * (rng() % (hd / 2 + 1)), d = H * hd, N = B * T, half = rd / 2;
    INFO("B=" << B << " T=" << T << " H=" << H << " hd=" << hd << " rd=" << rd);
    const auto tab = make_rotary_tables(T, rd, 10000.0);
    auto qkv = random_view(N * 3 * d, 11 + trial), R = random_view(N * 3 * d, 12 + trial);
    View1<double> y("y", N * 3 * d);
    auto loss = [&] {
      Kokkos::deep_copy(y, qkv);
      rotary_apply(mat(y, N, 3 * d), tab, T, H, hd, rd, false);
      return dot(y, R);
    };
    loss();
    View1<double> dq("dq", N * 3 * d);
    Kokkos::deep_copy(dq, R);
    rotary_apply(mat(dq, N, 3 * d), tab, T, H, hd, rd, true);
    CHECK(max_fd_error(loss, {{qkv, dq}}) < 1e-7);
    // x' = x·cos θ + rotate_half(x)·sin θ on q and k, θ = t·base^(−2j/rd) (fp32 angles, as HF);
    // v and the dims past rd are untouched
    auto a = to_vec(qkv), r = to_vec(y);
    for (Index n = 0; n < N; ++n)
      for (Index h = 0; h < H; ++h)
        for (Index c = 0; c < 3 * hd; ++c) {
          const Index at = n * 3 * d + h * 3 * hd + c, part = c / hd, j = c % hd;
          double expect = a[at];
          if (part < 2 && j < rd) {
            const Index jj = j % half;
            const float inv_freq = 1.0f / float(std::pow(10000.0, float(2 * jj) / float(rd)));
            const double theta = double(float(n % T) * inv_freq);
            const double other = j < half ? -a[at + half] : a[at - half];
            expect = a[at] * double(float(std::cos(theta))) + other * double(float(std::sin(theta)));
          }
          CHECK(r[at] == Approx(expect).epsilon(1e-12).margin(1e-12));
        }
  }
}

namespace {
// The naive reference's row t of pair (b, h): the softmax numerators exp(s_k − max), k ≤ t, of
// the scores s_k = score(Σ_j in(q_tj)·in(k_kj)) read from qkv rows x (per head [q|k|v]); *lse
// receives max + log Σ, *z the sum.
template <class X, class In, class Score>
std::vector<double> causal_row(const std::vector<X>& x, AttentionShape a, Index b, Index h, Index t, In in, Score score,
                               double* lse, double* z) {
  const Index T = a.seq, hd = a.hd, d = a.heads * hd;
  std::vector<double> sc(std::size_t(t + 1));
  double mx = -1e300;
  for (Index k = 0; k <= t; ++k) {
    double v = 0;
    for (Index j = 0; j < hd; ++j)
      v += in(double(x[(b * T + t) * 3 * d + h * 3 * hd + j])) * in(double(x[(b * T + k) * 3 * d + h * 3 * hd + hd + j]));
    sc[std::size_t(k)] = score(v);
    mx = std::max(mx, sc[std::size_t(k)]);
  }
  *z = 0;
  for (auto& v : sc) *z += (v = std::exp(v - mx));
  *lse = mx + std::log(*z);
  return sc;
}
}  // namespace

// [slow]: some 4 million launches on a GPU, too many for compute-sanitizer (bench/gpu/run.sh leaves it out)
TEST_CASE("batched causal attention matches a naive softmax and finite differences, for any group and tile size",
          "[layers][slow]") {
  std::mt19937 rng(2024);
  Gemm<double> gemm;
  for (int trial = 0; trial < 6; ++trial) {  // random shapes, odd sizes included, T = 1 once
    const Index B = 1 + rng() % 3,
                T = trial == 0   ? 1
                    : trial == 5 ? 23
                                 : 2 + rng() % 8,
                H = 1 + rng() % 3, hd = 1 + rng() % 6;
    const Index d = H * hd, N = B * T, pairs = B * H;
    INFO("B=" << B << " T=" << T << " H=" << H << " hd=" << hd);
    const AttentionShape s{B, T, H, hd};
    auto qkv = random_view(N * 3 * d, 13 + trial, -2, 2), R = random_view(N * d, 14 + trial);
    View1<double> out("out", N * d), lse("lse", pairs * T), dqkv("dqkv", N * 3 * d);
    std::vector<double> out1, lse1, dqkv1;  // group of one pair, one tile: the reference for the others
    // groups of 1, 2 and 3 pairs (which split batches when H does not divide them) and all at
    // once; one tile (the full T×T scores), tiles of 1, 2 and 3 rows (a last one shorter) and auto
    for (Index tile : {T, Index(1), Index(2), Index(3), Index(0)})
      for (Index group : {Index(1), Index(2), Index(3), pairs}) {
        const ScoreTiles tiles(T, tile > 0 ? tile : ScoreTiles::auto_tile(T));
        INFO("tile=" << tiles.tile << " group=" << group);
        const auto pair_bytes = std::size_t(2 * sizeof(double) * tiles.per_pair());
        const AttentionWorkspace<double> ws(s, std::size_t(group) * pair_bytes, tile);
        REQUIRE(ws.group == std::min(group, pairs));
        REQUIRE(ws.tiles.blocks == (T + tiles.tile - 1) / tiles.tile);
        auto loss = [&] {
          attention_forward(gemm, mat(out, N, d), flat(lse), mat(qkv, N, 3 * d), s, ws);
          return dot(out, R);
        };
        loss();
        attention_backward(gemm, mat(dqkv, N, 3 * d), mat(R, N, d), mat(out, N, d), flat(lse), mat(qkv, N, 3 * d), s,
                           ws);
        if (group == 1 && tile == T) {
          out1 = to_vec(out), lse1 = to_vec(lse), dqkv1 = to_vec(dqkv);
          CHECK(max_fd_error(loss, {{qkv, dqkv}}) < 1e-7);
        } else if (tile == T) {  // the same products and rows, however grouped: equal to the bit on the host
          CHECK(same_up_to_grouping(to_vec(out), out1, 1e-13));
          CHECK(same_up_to_grouping(to_vec(lse), lse1, 1e-13));
          CHECK(same_up_to_grouping(to_vec(dqkv), dqkv1, 1e-13));
        } else {  // tiles: the same scores and softmax; P·V and the gradients' products leave
          // out the masked (zero) terms, which regroups BLAS's sums, and dV, dK are summed tile by tile
          // (3.6e-16 on the host; cuBLAS may also pick another kernel for another shape)
          const double regrouped = kHostMemory ? 1e-15 : 1e-13;
          CHECK(same_up_to_grouping(to_vec(lse), lse1, 1e-13));
          CHECK(max_relative_difference(to_vec(out), out1) < regrouped);
          CHECK(max_relative_difference(to_vec(dqkv), dqkv1) < regrouped);
          CHECK(max_fd_error(loss, {{qkv, dqkv}}) < 1e-7);
        }
      }
    // naive reference: the masked scores of each (batch, head), softmax, values
    auto q = to_vec(qkv), o = out1;
    for (Index b = 0; b < B; ++b)
      for (Index h = 0; h < H; ++h)
        for (Index t = 0; t < T; ++t) {
          double lse_ref = 0, z = 0;
          const auto sc = causal_row(
              q, {B, T, H, hd}, b, h, t, [](double x) { return x; }, [&](double v) { return v / std::sqrt(double(hd)); },
              &lse_ref, &z);
          CHECK(lse1[(b * H + h) * T + t] == Approx(lse_ref).epsilon(1e-13));
          for (Index j = 0; j < hd; ++j) {
            double ref = 0;
            for (Index k = 0; k <= t; ++k) ref += sc[k] / z * q[(b * T + k) * 3 * d + h * 3 * hd + 2 * hd + j];
            CHECK(o[(b * T + t) * d + h * hd + j] == Approx(ref).epsilon(1e-12));
          }
        }
  }
}

TEST_CASE("bf16 attention rounds Q, K, V and the probabilities, and only them, to bf16", "[layers]") {
  // The forward against a naive reference in double that rounds where the GPU stores bf16 (the
  // GEMM inputs q, k, v, P), for one tile and for tiles; the reference without P rounded is far.
  const Index B = 2, T = 13, H = 2, hd = 8, d = H * hd, N = B * T, pairs = B * H;
  const AttentionShape s{B, T, H, hd};
  auto qkv64 = random_view(N * 3 * d, 21, -2, 2);
  View1<float> qkv("qkv", N * 3 * d), out("out", N * d), lse("lse", pairs * T);
  {
    auto h = host_copy(qkv64);
    auto hf = Kokkos::create_mirror_view(qkv);
    for (Index i = 0; i < N * 3 * d; ++i) hf(i) = float(h(i));
    Kokkos::deep_copy(qkv, hf);
  }
  const auto q = to_vec(qkv);
  auto r = [](double x) { return double(round_to_bf16(float(x))); };
  for (Index tile : {T, Index(4)}) {
    INFO("tile=" << tile);
    Gemm<float> gemm(GemmPrecision::bf16);
    const AttentionWorkspace<float> ws(s, std::size_t(1) << 20, tile, true);
    attention_forward(gemm, as_matrix(out.data(), N, d), flat(lse), as_matrix(qkv.data(), N, 3 * d), s, ws);
    const auto o = to_vec(out);
    // outputs off the reference by more than fp32's sums and exponentials explain (2e-5)
    Index off = 0, off_unrounded = 0;
    for (Index b = 0; b < B; ++b)
      for (Index h = 0; h < H; ++h)
        for (Index t = 0; t < T; ++t) {
          double lse_ref = 0, z = 0;
          const auto sc = causal_row(
              q, s, b, h, t, r, [&](double v) { return double(float(v) * float(1.0 / std::sqrt(double(hd)))); },
              &lse_ref, &z);
          for (Index j = 0; j < hd; ++j) {
            double ref = 0, unrounded = 0;
            for (Index k = 0; k <= t; ++k) {
              const double vk = r(q[(b * T + k) * 3 * d + h * 3 * hd + 2 * hd + j]);
              ref += r(sc[k] / z) * vk, unrounded += sc[k] / z * vk;
            }
            const double got = o[(b * T + t) * d + h * hd + j];
            off += std::abs(got - ref) > 2e-5, off_unrounded += std::abs(got - unrounded) > 2e-5;
          }
        }
    // On the host none. A GPU sums S in another order, and a probability within that rounding of
    // a bf16 tie rounds the other way: one row's hd outputs per such probability, allow two.
    CHECK(off <= (kHostMemory ? 0 : 2 * hd));
    CHECK(off_unrounded > N * d / 2);  // P really rounded: most outputs move
  }
}

namespace {
// A bf16-stored buffer as the floats it holds (bit patterns on GPUs).
std::vector<float> bf16_values(const View1<Bf16Storage>& v, Index n) {
  const auto h = host_copy(v);
  std::vector<float> out(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<Bf16Storage, float>) {
      out[std::size_t(i)] = h(i);
    } else {
      const std::uint32_t u = std::uint32_t(h(i)) << 16;
      std::memcpy(&out[std::size_t(i)], &u, sizeof u);
    }
  }
  return out;
}
}  // namespace

TEST_CASE("the bf16 softmax stores P and dS rounded to bf16, over each row's tile", "[layers]") {
  // One pair, T = 5 in tiles of 2 (rows of 2, 2, 4, 4, 5 scores), backward: P = exp(scale·S − lse)
  // and dS = P∘(dP − δ)·scale, each the float value rounded once; past the diagonal zeros.
  const Index T = 5;
  const AttentionShape s{1, T, 1, 2};
  const AttentionWorkspace<float> w(s, std::size_t(1) << 20, 2, true);
  const Index n = w.tiles.per_pair();
  REQUIRE(n == 2 * 2 + 2 * 4 + 1 * 5);
  auto scores = random_floats(n, 31), dp = random_floats(n, 32), lse = random_floats(T, 33),
       delta = random_floats(T, 34);
  Kokkos::deep_copy(w.s, scores), Kokkos::deep_copy(w.p, dp), Kokkos::deep_copy(w.delta, delta);
  const auto S = to_vec(scores), dP = to_vec(dp), L = to_vec(lse), D = to_vec(delta);
  const float scale = 0.7f;
  detail::softmax_rows(w, flat(lse), 0, 1, scale, true);
  const auto P16 = bf16_values(w.p16, n), dS16 = bf16_values(w.ds16, n);
  Index checked = 0;
  for (Index t = 0; t < T; ++t)
    for (Index k = 0; k < w.tiles.row_length(t); ++k, ++checked) {
      const Index i = w.tiles.row_start(t) + k;
      const float pk = k <= t ? std::exp(S[i] * scale - L[t]) : 0.0f, dsk = pk * (dP[i] - D[t]) * scale;
      INFO("t=" << t << " k=" << k);
      if (kHostMemory) {  // the emulation: exactly the rounded float values
        CHECK(P16[i] == round_to_bf16(pk));
        CHECK(dS16[i] == round_to_bf16(dsk));
      } else {  // another exp: within one bf16 step
        CHECK(std::abs(P16[i] - round_to_bf16(pk)) <= std::ldexp(std::abs(pk), -7));
        CHECK(std::abs(dS16[i] - round_to_bf16(dsk)) <= std::ldexp(std::abs(dsk), -7));
      }
    }
  CHECK(checked == n);
}

TEST_CASE("embedding backward accumulates repeated ids", "[layers]") {
  const Index V = 6, d = 5, N = 7;
  View1<int32_t> ids("ids", N);
  auto hid = Kokkos::create_mirror_view(ids);
  const int32_t id_list[] = {3, 1, 3, 0, 5, 3, 1};
  for (Index i = 0; i < N; ++i) hid(i) = id_list[i];
  Kokkos::deep_copy(ids, hid);
  auto E = random_view(V * d, 15), R = random_view(N * d, 16);
  View1<double> y("y", N * d), dE("dE", V * d);
  auto loss = [&] {
    embedding_forward(mat(y, N, d), ids, mat(E, V, d));
    return dot(y, R);
  };
  loss();
  TokenRows rows(N);
  rows.build(id_list);
  CHECK(rows.count == 4);  // ids 0, 1, 3, 5
  embedding_backward(mat(dE, V, d), rows, mat(R, N, d));
  CHECK(max_fd_error(loss, {{E, dE}}) < 1e-7);
}

TEST_CASE("target_is_argmax: the first of equal maxima, as torch.argmax", "[layers]") {
  const Index N = 6, V = 11;
  auto logits = random_view(N * V, 23, -3, 3);
  auto h = Kokkos::create_mirror_view(logits);
  Kokkos::deep_copy(h, logits);
  h(2 * V + 7) = h(2 * V + 4) = 9.0;  // row 2: a tie at 4 and 7 (4 wins)
  Kokkos::deep_copy(logits, h);
  View1<int32_t> tg("tg", N), hit("hit", N);
  auto ht = Kokkos::create_mirror_view(tg);
  for (Index n = 0; n < N; ++n) {  // rows 0, 2 and 4: the argmax (row 2: the first of the tie); others not
    Index best = 0;
    for (Index v = 1; v < V; ++v)
      if (h(n * V + v) > h(n * V + best)) best = v;
    ht(n) = int32_t(n % 2 == 0 ? best : (best + 1 + n) % V);
  }
  Kokkos::deep_copy(tg, ht);
  target_is_argmax(hit, mat(logits, N, V), tg);
  const auto got = to_vec(hit);
  for (Index n = 0; n < N; ++n) {
    INFO("row " << n);
    CHECK(got[std::size_t(n)] == (n % 2 == 0 ? 1 : 0));
  }
  ht(2) = 7;  // the second of the tie is not the argmax
  Kokkos::deep_copy(tg, ht);
  target_is_argmax(hit, mat(logits, N, V), tg);
  CHECK(to_vec(hit)[2] == 0);
}

TEST_CASE("cross entropy and its fused gradient", "[layers]") {
  const Index N = 4, V = 13;
  auto logits = random_view(N * V, 17, -3, 3);
  View1<int32_t> tg("tg", N);
  auto ht = Kokkos::create_mirror_view(tg);
  for (Index i = 0; i < N; ++i) ht(i) = int32_t((i * 5 + 2) % V);
  Kokkos::deep_copy(tg, ht);
  View1<double> losses("losses", N), work("work", N * V);
  auto loss = [&] {
    Kokkos::deep_copy(work, logits);
    cross_entropy(losses, mat(work, N, V), tg, 0.0);
    double s = 0;
    for (double l : to_vec(losses)) s += l;
    return s;
  };
  const double l0 = loss();
  Kokkos::deep_copy(work, logits);
  cross_entropy(losses, mat(work, N, V), tg, 1.0);  // work now holds ∂(Σ losses)/∂logits
  CHECK(max_fd_error(loss, {{logits, work}}) < 1e-7);
  // naive value
  auto lg = to_vec(logits);
  double ref = 0;
  for (Index n = 0; n < N; ++n) {
    double z = 0;
    for (Index v = 0; v < V; ++v) z += std::exp(lg[n * V + v]);
    ref += std::log(z) - lg[n * V + ht(n)];
  }
  CHECK(l0 == Approx(ref).epsilon(1e-12));
}

TEST_CASE("column reductions over many row blocks equal a naive loop, every run the same", "[layers]") {
  for (Index N : {Index(1), kColumnBlock - 1, kColumnBlock, 3 * kColumnBlock + 17}) {
    const Index C = 7;
    INFO("N=" << N);
    auto dy = random_view(N * C, 31), x = random_view(N * C, 32), db = random_view(C, 33);
    const auto before = to_vec(db), y = to_vec(dy);
    const auto partials = column_scratch<double>(N, C);
    add_column_sums(flat(db), mat(dy, N, C), partials);
    const auto once = to_vec(db);
    for (Index j = 0; j < C; ++j) {
      double ref = before[j];
      for (Index n = 0; n < N; ++n) ref += y[n * C + j];
      CHECK(once[j] == Approx(ref).epsilon(1e-13));
    }
    from_vec(db, before);
    add_column_sums(flat(db), mat(dy, N, C), partials);
    CHECK(to_vec(db) == once);  // deterministic
  }
}

TEST_CASE("LayerNorm and GELU outputs stored in bf16 are their float outputs rounded once", "[layers]") {
  // What the bf16 GEMMs read (Stored with b16 set) is to_bf16_storage of what the float output
  // would hold, element for element: the rounding point the GEMM used to apply to its input.
  const Index N = 37, d = 19;
  auto x = random_floats(N * d, 51), w = random_floats(d, 52), b = random_floats(d, 53), fb = random_floats(d, 54);
  View1<float> y("y", N * d), mean("mean", N), rstd("rstd", N), fc1a("fc1a", N * d), fc1b("fc1b", N * d),
      act("act", N * d);
  View1<Bf16Storage> y16("y16", N * d), act16("act16", N * d);
  layernorm_forward(mat(y, N, d), flat(mean), flat(rstd), mat(x, N, d), flat(w), flat(b), 1e-5);
  layernorm_forward(Stored<float>{{}, Bf16Matrix{mat(y16, N, d)}}, flat(mean), flat(rstd), mat(x, N, d), flat(w),
                    flat(b), 1e-5);
  Kokkos::deep_copy(fc1a, x), Kokkos::deep_copy(fc1b, x);
  bias_gelu_forward(mat(fc1a, N, d), mat(act, N, d), flat(fb), true);
  bias_gelu_forward(mat(fc1b, N, d), Stored<float>{{}, Bf16Matrix{mat(act16, N, d)}}, flat(fb), true);
  const auto Y = to_vec(y), Y16 = bf16_values(y16, N * d), A = to_vec(act), A16 = bf16_values(act16, N * d);
  Index rounded = 0;
  for (Index i = 0; i < N * d; ++i) {
    CHECK(Y16[std::size_t(i)] == round_to_bf16(Y[std::size_t(i)]));
    CHECK(A16[std::size_t(i)] == round_to_bf16(A[std::size_t(i)]));
    rounded += Y16[std::size_t(i)] != Y[std::size_t(i)];
  }
  CHECK(rounded > N * d / 2);               // really rounded
  CHECK(to_vec(fc1a) == to_vec(fc1b));      // the pre-activation kept in fp32 either way
}

TEST_CASE("LayerNorm parameter gradients over many rows equal naive sums", "[layers]") {
  const Index N = 777, d = 9;
  auto x = random_view(N * d, 41), dy = random_view(N * d, 42), w = random_view(d, 43), b = random_view(d, 44);
  View1<double> y("y", N * d), mean("mean", N), rstd("rstd", N), dx("dx", N * d), dw("dw", d), db("db", d);
  layernorm_forward(mat(y, N, d), flat(mean), flat(rstd), mat(x, N, d), flat(w), flat(b), 1e-5);
  layernorm_backward(mat(dx, N, d), flat(dw), flat(db), mat(dy, N, d), mat(x, N, d), flat(mean), flat(rstd), flat(w),
                     column_scratch<double>(N, d));
  const auto xs = to_vec(x), g = to_vec(dy), mu = to_vec(mean), r = to_vec(rstd), gw = to_vec(dw), gb = to_vec(db);
  for (Index j = 0; j < d; ++j) {
    double sw = 0, sb = 0;
    for (Index n = 0; n < N; ++n) sw += g[n * d + j] * (xs[n * d + j] - mu[n]) * r[n], sb += g[n * d + j];
    CHECK(gw[j] == Approx(sw).epsilon(1e-12));
    CHECK(gb[j] == Approx(sb).epsilon(1e-12));
  }
}
