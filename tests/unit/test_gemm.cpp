// The GEMM interface: bf16 rounding against a double reference, bf16 GEMMs within bf16 bounds
// of a double product and exact against an fp32 GEMM of pre-rounded inputs, strided batches
// against single calls.
#include <cstring>

#include "core/device.hpp"
#include "core/gemm.hpp"
#include "testing.hpp"

using namespace rewarm;
using namespace rewarm::testing;

// Round to nearest even at 8 significant bits, in double arithmetic: the reference.
static float bf16_reference(float x) {
  if (std::isnan(x) || std::isinf(x)) return x;
  if (x == 0) return x;
  int e;
  const double m = std::frexp(double(x), &e);  // x = m·2^e, 0.5 ≤ |m| < 1
  const double scaled = std::ldexp(m, 8);      // 8 bits of significand
  double r = std::nearbyint(scaled);           // ties to even (default rounding mode)
  return float(std::ldexp(r, e - 8));
}

TEST_CASE("round_to_bf16 rounds to nearest, ties to even", "[gemm]") {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int i = 0; i < 100000; ++i) {
    const float x = u(rng) * std::ldexp(1.0f, int(rng() % 60) - 30);
    REQUIRE(round_to_bf16(x) == bf16_reference(x));
  }
  // ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: to even (1); 1 + 3·2^-8 rounds up
  CHECK(round_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 1.0f);
  CHECK(round_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 1.0f + std::ldexp(1.0f, -6));
  CHECK(std::isinf(round_to_bf16(std::numeric_limits<float>::max())));  // past the largest bf16
  CHECK(std::isnan(round_to_bf16(std::nanf(""))));
  CHECK(round_to_bf16(-0.0f) == 0.0f);
}

TEST_CASE("bf16 GEMMs: the fp32 product of bf16-rounded inputs, within bf16 bounds of the exact one", "[gemm]") {
  const Index M = 37, K = 53, Nn = 29;
  for (char ta : {'N', 'T'})
    for (char tb : {'N', 'T'}) {
      INFO(ta << tb);
      auto a = random_floats(M * K, 3), b = random_floats(K * Nn, 4);
      const auto A = ta == 'N' ? as_matrix(a.data(), M, K) : as_matrix(a.data(), K, M);
      const auto B = tb == 'N' ? as_matrix(b.data(), K, Nn) : as_matrix(b.data(), Nn, K);
      View1<float> c("c", M * Nn), c32("c32", M * Nn), ar("ar", M * K), br("br", K * Nn);
      Gemm<float> bf16(GemmPrecision::bf16), fp32;
      bf16(ta, tb, 1.0f, A, B, 0.0f, as_matrix(c.data(), M, Nn));
      auto ha = host_copy(a), hb = host_copy(b);
      auto har = Kokkos::create_mirror_view(ar), hbr = Kokkos::create_mirror_view(br);
      for (Index i = 0; i < M * K; ++i) har(i) = bf16_reference(ha(i));
      for (Index i = 0; i < K * Nn; ++i) hbr(i) = bf16_reference(hb(i));
      Kokkos::deep_copy(ar, har);
      Kokkos::deep_copy(br, hbr);
      fp32(ta, tb, 1.0f, as_matrix(ar.data(), A.extent(0), A.extent(1)), as_matrix(br.data(), B.extent(0), B.extent(1)),
           0.0f, as_matrix(c32.data(), M, Nn));
      // the host's emulation is exactly this; a GPU's tensor cores sum in their own order
      CHECK(same_up_to_grouping(to_vec(c), to_vec(c32), 1e-5));
      auto hc = host_copy(c);
      double worst = 0, moved = 0;
      for (Index i = 0; i < M; ++i)
        for (Index j = 0; j < Nn; ++j) {
          double exact = 0, mag = 0;
          for (Index k = 0; k < K; ++k) {
            const double x = ta == 'N' ? ha(i * K + k) : ha(k * M + i), y = tb == 'N' ? hb(k * Nn + j) : hb(j * K + k);
            exact += x * y, mag += std::abs(x * y);
          }
          const double err = std::abs(hc(i * Nn + j) - exact) / mag;
          worst = std::max(worst, err);
          moved = std::max(moved, err);
        }
      CHECK(worst < 2 * std::ldexp(1.0, -8));  // two inputs, each within half a bf16 ulp (2^-9)
      CHECK(moved > 1e-4);                     // and really rounded
    }
}

TEST_CASE("strided batches equal single calls", "[gemm]") {
  const Index count = 5, M = 7, K = 4, Nn = 6, sA = M * K + 3, sB = K * Nn, sC = M * Nn + 1;
  for (auto p : {GemmPrecision::fp32, GemmPrecision::bf16}) {
    auto a = random_floats(sA * count, 5), b = random_floats(sB * count, 6);
    View1<float> c("c", sC * count), c1("c1", sC * count);
    Gemm<float> g(p);
    g.batched('N', 'T', 0.5f, as_matrix(a.data(), M, K), sA, as_matrix(b.data(), Nn, K), sB, 0.0f,
              as_matrix(c.data(), M, Nn), sC, count);
    for (Index i = 0; i < count; ++i)
      g('N', 'T', 0.5f, as_matrix(a.data() + i * sA, M, K), as_matrix(b.data() + i * sB, Nn, K), 0.0f,
        as_matrix(c1.data() + i * sC, M, Nn));
    CHECK(same_up_to_grouping(to_vec(c), to_vec(c1), 1e-5));
  }
}

TEST_CASE("precision names; tf32 needs a CUDA build", "[gemm]") {
  CHECK(gemm_precision("bf16", "run.toml") == GemmPrecision::bf16);
  CHECK(gemm_precision("fp32", "run.toml") == GemmPrecision::fp32);
  CHECK_THROWS_WITH(gemm_precision("fp16", "run.toml"), Catch::Contains("is not one of fp32, tf32, bf16"));
#if !defined(KOKKOS_ENABLE_CUDA)
  CHECK_THROWS_WITH(gemm_precision("tf32", "run.toml"),
                    Catch::Contains("run.toml: precision.gemm = \"tf32\" needs NVIDIA tensor cores"));
#endif
}

TEST_CASE("device checks say what was asked for and what was found", "[device]") {
  CHECK(device_id_problem(-1, 1).empty());
  CHECK(device_id_problem(3, 4).empty());
  CHECK(device_id_problem(4, 4) == "GPU 4 was asked for (--kokkos-device-id or KOKKOS_DEVICE_ID) but 4 are visible");
  CHECK(device_id_problem(1, 1) == "GPU 1 was asked for (--kokkos-device-id or KOKKOS_DEVICE_ID) but 1 is visible");
  CHECK(memory_problem(1e12, MemoryBudget{}).empty());  // no memory report: nothing to check
  const MemoryBudget gpu{79ull << 30, 80ull << 30, true, ""};
  CHECK(memory_problem(double(40ull << 30), gpu).empty());
  CHECK(memory_problem(double(90ull << 30), gpu) ==
        "needs about 90.0 GiB on the GPU but it has 79.0 GiB free of 80.0 GiB");
  const MemoryBudget host{20ull << 30, 24ull << 30, false, "MemAvailable"};
  CHECK(memory_problem(double(20ull << 30), host).empty());
  CHECK(memory_problem(double(25ull << 30), host) ==
        "needs about 25.0 GiB of host memory but 20.0 GiB are available (MemAvailable, of 24.0 GiB)");
  CHECK(memory_budget().total > 0);    // every backend reports a budget here: GPU memory, or MemAvailable
  const auto probe = probe_devices();  // this build and machine
  CHECK(probe.backend == ExecSpace::name());
  if (!probe.gpu) CHECK((probe.count == 1 && probe.error.empty()));
}

TEST_CASE("an operand stored in bf16 by its producer gives the product of the converted one", "[gemm]") {
  const Index count = 3, M = 9, K = 5, Nn = 4, sA = M * K + 2, sB = K * Nn;
  auto a = random_floats(sA * count, 7), b = random_floats(sB * count, 8);
  // a as a producing kernel stores it for a bf16 GEMM
  View1<Bf16Storage> a16("a16", sA * count);
  {
    auto src = a;
    auto dst = a16;
    Kokkos::parallel_for(
        Range(0, sA * count), KOKKOS_LAMBDA(Index i) { dst(i) = to_bf16_storage(src(i)); });
  }
  for (char ta : {'N', 'T'}) {
    INFO(ta);
    const Index ar = ta == 'N' ? M : K, ac = ta == 'N' ? K : M;
    View1<float> c("c", M * Nn * count), c16("c16", M * Nn * count);
    Gemm<float> g(GemmPrecision::bf16);
    g.batched(ta, 'N', 1.0f, as_matrix(a.data(), ar, ac), sA, as_matrix(b.data(), K, Nn), sB, 0.0f,
              as_matrix(c.data(), M, Nn), M * Nn, count);
    g.batched(ta, 'N', 1.0f, Bf16Matrix{as_matrix(a16.data(), ar, ac)}, sA, as_matrix(b.data(), K, Nn), sB, 0.0f,
              as_matrix(c16.data(), M, Nn), M * Nn, count);
    CHECK(to_vec(c16) == to_vec(c));  // the same bf16 inputs, the same library call
  }
  Gemm<float> fp32;
  CHECK_THROWS_WITH(fp32.batched('N', 'N', 1.0f, Bf16Matrix{as_matrix(a16.data(), M, K)}, 0, as_matrix(b.data(), K, Nn),
                                 0, 0.0f, as_matrix(a.data(), M, Nn), 0, 1),
                    Catch::Contains("needs precision bf16"));
}
