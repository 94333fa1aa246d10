// The fused attention's choice ([precision] attention) and everything around its kernel, through
// its host emulation: a model wired for the fused attention (q, k, v and the attention's output
// kept in bf16, dO stored in bf16, dqkv read back) against the GEMM attention computing in bf16,
// both against the double model; and its memory estimate. cuDNN's kernel itself runs on a GPU
// only (bench/gpu/run.sh compares it with the GEMM attention there).
#include "core/error.hpp"
#include "core/op_counter.hpp"
#include "model/attention_choice.hpp"
#include "model/gpt.hpp"
#include "testing.hpp"

using namespace rewarm;
using namespace rewarm::testing;
using layers::AttentionShape;
using layers::FusedAttention;
using layers::FusedAttentionSupport;

namespace {
ModelConfig small_model(bool parallel) {
  ModelConfig c;
  c.vocab_size = 11;
  c.hidden_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 3;  // head_dim 8
  c.intermediate_size = 40;
  c.rotary_pct = 0.5;
  c.max_position_embeddings = 16;
  c.use_parallel_residual = parallel;
  return c;
}
void tokens(View1<int32_t>& ids, View1<int32_t>& tg, Index V) {
  auto hi = Kokkos::create_mirror_view(ids);
  auto ht = Kokkos::create_mirror_view(tg);
  for (Index i = 0; i < Index(ids.extent(0)); ++i) hi(i) = int32_t((i * 7 + 3) % V), ht(i) = int32_t((i * 5 + 1) % V);
  Kokkos::deep_copy(ids, hi);
  Kokkos::deep_copy(tg, ht);
}
// The largest gradient error relative to the largest gradient.
double grad_error(const std::vector<double>& g, const std::vector<double>& ref) {
  double err = 0, top = 0;
  for (std::size_t i = 0; i < g.size(); ++i)
    err = std::max(err, std::abs(g[i] - ref[i])), top = std::max(top, std::abs(ref[i]));
  return err / top;
}
template <class T>
std::vector<double> grads_of(Gpt<T>& m) {
  const auto g = to_vec(m.grads);
  return {g.begin(), g.end()};
}
}  // namespace

TEST_CASE("precision.attention: what runs and why", "[attention]") {
  const AttentionShape shape{2, 16, 4, 64};
  const FusedAttentionSupport ok{"", "cuDNN 9.19.0 (/lib/libcudnn_graph.so.9)"}, missing{"no cuDNN here", ""};
  int builds = 0;
  auto build = [&](const AttentionShape&) {  // the emulation stands in for cuDNN's plans: host builds only
    ++builds;
    return FusedAttention::host_emulation({2, 16, 4, 64});
  };
  auto refuse = [&](const AttentionShape&) -> std::shared_ptr<FusedAttention> {
    ++builds;
    throw Error("no engine for this shape");
  };
  const auto bf16 = GemmPrecision::bf16, fp32 = GemmPrecision::fp32;

  auto c = choose_attention(AttentionRequest::gemm, bf16, shape, "run.toml", ok, build);
  CHECK(c.line() == "gemm (precision.attention = \"gemm\")");
  CHECK(builds == 0);
  if (!kVendorGemm) {
    c = choose_attention(AttentionRequest::automatic, bf16, shape, "run.toml", ok, build);
    CHECK(c.name() == "fused");
    CHECK(c.line() == "fused (cuDNN 9.19.0 (/lib/libcudnn_graph.so.9))");
    CHECK(builds == 1);
    CHECK(choose_attention(AttentionRequest::fused, bf16, shape, "run.toml", ok, build).fused);
    builds = 0;
  }
  CHECK(choose_attention(AttentionRequest::automatic, fp32, shape, "run.toml", ok, build).line() ==
        "gemm (auto: precision.gemm = \"fp32\", and cuDNN's fused attention computes in bf16)");
  CHECK(choose_attention(AttentionRequest::automatic, bf16, shape, "run.toml", missing, build).line() == "gemm (auto: no cuDNN here)");
  CHECK(choose_attention(AttentionRequest::automatic, bf16, shape, "run.toml", ok, refuse).line() ==
        "gemm (auto: cuDNN cannot run head size 64, seq_len 16: no engine for this shape)");
  CHECK(builds == 1);  // never built where it could not run anyway
  CHECK_THROWS_WITH(choose_attention(AttentionRequest::fused, bf16, shape, "run.toml", missing, build),
                    "run.toml: precision.attention = \"fused\" cannot run here: no cuDNN here");
  CHECK_THROWS_WITH(choose_attention(AttentionRequest::fused, fp32, shape, "run.toml", ok, build),
                    Catch::Contains("cannot run here: precision.gemm = \"fp32\""));
  CHECK_THROWS_WITH(choose_attention(AttentionRequest::fused, bf16, shape, "run.toml", ok, refuse),
                    Catch::Contains("cannot run here: cuDNN cannot run head size 64"));
  if (!kVendorGemm) {  // this process: a host build says so, and the real choice falls back
    CHECK_THAT(layers::fused_attention_support().why_not, Catch::Contains("not an NVIDIA GPU"));
    CHECK(choose_attention(AttentionRequest::automatic, bf16, shape, "run.toml").line().rfind("gemm (auto: this build runs on", 0) == 0);
    CHECK_THROWS_WITH(FusedAttention(shape), Catch::Contains("not an NVIDIA GPU"));
  }
}

// The emulation is the host's (floats holding bf16 values): these run in host builds only.
static void check_fused_wiring() {
  for (bool parallel : {true, false}) {
    const auto cfg = small_model(parallel);
    const Index B = 2, T = 13;
    View1<int32_t> ids("ids", B * T), tg("tg", B * T);
    tokens(ids, tg, cfg.vocab_size);
    GptOptions gemm_opts, fused_opts;
    gemm_opts.gemm = fused_opts.gemm = GemmPrecision::bf16;
    fused_opts.fused = FusedAttention::host_emulation({B, T, cfg.num_attention_heads, cfg.head_dim()});
    Gpt<double> exact(cfg, B, T);
    Gpt<float> gemm(cfg, B, T, gemm_opts), fused(cfg, B, T, fused_opts);
    exact.init_random(3, 0.2), gemm.init_random(3, 0.2), fused.init_random(3, 0.2);
    const double l_exact = exact.forward_backward(ids, tg, 1.0), l_gemm = gemm.forward_backward(ids, tg, 1.0),
                 l_fused = fused.forward_backward(ids, tg, 1.0);
    const auto g_exact = grads_of(exact), g_gemm = grads_of(gemm), g_fused = grads_of(fused);
    INFO("parallel=" << parallel << " loss exact " << l_exact << " gemm " << l_gemm << " fused " << l_fused
                     << "; gradient error gemm " << grad_error(g_gemm, g_exact) << " fused "
                     << grad_error(g_fused, g_exact) << ", fused against gemm " << grad_error(g_fused, g_gemm));
    // The forward pass is the same computation: the attention's output, stored in bf16, is read
    // only by the dense GEMM, which rounds it to bf16 in the GEMM path. The backward passes
    // differ where the fused path stores bf16 and the GEMM path keeps fp32 (dO and O in δ = dO·O,
    // dqkv before rotary and the bias gradient): within bf16 rounding of each other (measured
    // 0.24% and 0.52% of the largest gradient), as close to the exact model as the GEMM path is.
    CHECK(l_fused == l_gemm);
    CHECK(std::abs(l_fused - l_exact) < 2e-3 * std::abs(l_exact));
    CHECK(grad_error(g_fused, g_gemm) < 1e-2);
    CHECK(grad_error(g_fused, g_exact) < 1.5 * grad_error(g_gemm, g_exact) + 2e-3);
    // the emulation keeps no fp32 q, k, v or attention output per layer, and repeats exactly
    CHECK(fused.loss(ids, tg) == l_fused);
  }
}

static void check_fused_memory() {
  for (auto [B, T] : {std::pair<Index, Index>{2, 13}, {3, 4}})
    for (bool parallel : {true, false})
      for (auto recompute : {Recompute::none, Recompute::selective, Recompute::full}) {
        const auto cfg = small_model(parallel);
        GptOptions o;
        o.gemm = GemmPrecision::bf16;
        o.recompute = recompute;
        o.fused = FusedAttention::host_emulation({B, T, cfg.num_attention_heads, cfg.head_dim()});
        CHECK(o.fused->workspace_bytes() == std::size_t(4 * B * T * cfg.hidden_size) * sizeof(float));
        View1<int32_t> ids("ids", B * T), tg("tg", B * T);
        tokens(ids, tg, cfg.vocab_size);
        OpCounter ops;
        const auto before = ops.peak_bytes();
        {
          Gpt<float> m(cfg, B, T, o);
          m.init_random(1, 0.1);
          m.forward_backward(ids, tg, 1.0);
        }
        INFO("B=" << B << " T=" << T << " parallel=" << parallel << " recompute=" << to_string(recompute));
        CHECK(std::size_t(ops.peak_bytes() - before) == Gpt<float>::memory_bytes(cfg, B, T, o));
        // against the GEMM attention: no fp32 qkv/attn per layer, no head buffers or scores
        GptOptions g;
        g.gemm = GemmPrecision::bf16;
        CHECK(Gpt<float>::memory_bytes(cfg, B, T, o) != Gpt<float>::memory_bytes(cfg, B, T, g));
      }
  const auto cfg = small_model(true);
  GptOptions o;
  o.fused = FusedAttention::host_emulation({2, 4, 3, 8});
  CHECK_THROWS_WITH(Gpt<float>(cfg, 2, 4, o), "the fused attention needs a float model with bf16 GEMMs");
  o.gemm = GemmPrecision::bf16;
  CHECK_THROWS_WITH(Gpt<float>(cfg, 2, 5, o), "the fused attention's plans are for another shape");
}

TEST_CASE("a model wired for the fused attention tracks the GEMM attention in bf16", "[attention]") {
  if (!kVendorGemm) check_fused_wiring();
}

TEST_CASE("the memory estimate counts the fused attention's bf16 activations and workspace", "[attention]") {
  if (!kVendorGemm) check_fused_memory();
}
