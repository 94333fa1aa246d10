// The whole GPT-NeoX model's gradient against finite differences in double precision, for
// both residual variants, both GELUs and partial rotary; and float against double.
#include "core/op_counter.hpp"
#include "model/gpt.hpp"
#include "model/traffic.hpp"
#include "testing.hpp"

using namespace rewarm;
using namespace rewarm::testing;

static ModelConfig tiny(bool parallel, const std::string& act, double rotary_pct) {
  ModelConfig c;
  c.vocab_size = 11;  // not a multiple of anything
  c.hidden_size = 12;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 3;  // head_dim 4
  c.intermediate_size = 20;
  c.rotary_pct = rotary_pct;
  c.max_position_embeddings = 16;
  c.use_parallel_residual = parallel;
  c.hidden_act = act;
  return c;
}

static void set_tokens(View1<int32_t>& ids, View1<int32_t>& tg, Index V) {
  auto hi = Kokkos::create_mirror_view(ids);
  auto ht = Kokkos::create_mirror_view(tg);
  for (Index i = 0; i < Index(ids.extent(0)); ++i) hi(i) = int32_t((i * 7 + 3) % V), ht(i) = int32_t((i * 5 + 1) % V);
  Kokkos::deep_copy(ids, hi);
  Kokkos::deep_copy(tg, ht);
}

TEST_CASE("GPT-NeoX gradient matches finite differences", "[model][fd]") {
  const Index B = 2, T = 5;
  for (bool parallel : {true, false})
    for (const char* act : {"gelu", "gelu_fast"})
      for (double rotary_pct : {0.5, 1.0}) {
        const auto cfg = tiny(parallel, act, rotary_pct);
        Gpt<double> model(cfg, B, T);
        auto p = random_vec(model.params.extent(0), 42, -0.5, 0.5);
        for (const auto& e : model.layout().entries)  // LayerNorm weights near 1, as after training
          if (is_layernorm_weight(e.name))
            for (Index i = 0; i < e.size(); ++i) p[e.offset + i] += 1;
        from_vec(model.params, p);
        View1<int32_t> ids("ids", B * T), tg("tg", B * T);
        set_tokens(ids, tg, cfg.vocab_size);
        model.zero_grads();
        model.forward_backward(ids, tg, 1.0);
        View1<double> grads("g", model.grads.extent(0));
        Kokkos::deep_copy(grads, model.grads);
        const double err = max_fd_error([&] { return model.loss(ids, tg); }, {{model.params, grads}});
        INFO("parallel=" << parallel << " act=" << act << " rotary_pct=" << rotary_pct);
        CHECK(err < 1e-6);
      }
}

TEST_CASE("float model agrees with the double model", "[model]") {
  const Index B = 2, T = 6;
  const auto cfg = tiny(true, "gelu", 0.25 * 2);
  Gpt<double> md(cfg, B, T);
  Gpt<float> mf(cfg, B, T);
  md.init_random(7, 0.2);
  mf.init_random(7, 0.2);
  View1<int32_t> ids("ids", B * T), tg("tg", B * T);
  set_tokens(ids, tg, cfg.vocab_size);
  md.zero_grads();
  mf.zero_grads();
  const double ld = md.forward_backward(ids, tg, 1.0), lf = mf.forward_backward(ids, tg, 1.0);
  CHECK(lf == Approx(ld).epsilon(1e-5));
  auto gd = to_vec(md.grads);
  auto gf = to_vec(mf.grads);
  double worst = 0;
  for (std::size_t i = 0; i < gd.size(); ++i) worst = std::max(worst, std::abs(gd[i] - gf[i]));
  CHECK(worst < 1e-4);
}

TEST_CASE("evaluation over a prefix counts only those tokens", "[model]") {
  const Index B = 3, T = 4;
  const auto cfg = tiny(true, "gelu", 0.5);
  Gpt<double> m(cfg, B, T);
  m.init_random(3, 0.1);
  View1<int32_t> ids("ids", B * T), tg("tg", B * T);
  set_tokens(ids, tg, cfg.vocab_size);
  const double all = m.loss(ids, tg), first_two = m.loss(ids, tg, 2 * T);
  CHECK(first_two < all);
  CHECK(first_two > 0);
}

TEST_CASE("random init: normal(0, std) matrices, zero biases, LayerNorm weights 1 (final one too)", "[model]") {
  auto cfg = tiny(true, "gelu", 0.5);
  cfg.hidden_size = 48;
  cfg.num_attention_heads = 4;
  cfg.intermediate_size = 96;
  Gpt<double> m(cfg, 1, 2);
  m.init_random(11, 0.02);
  const auto p = to_vec(m.params);
  for (const auto& e : m.layout().entries) {
    INFO(e.name);
    double sum = 0, sq = 0;
    for (Index i = 0; i < e.size(); ++i) sum += p[e.offset + i], sq += p[e.offset + i] * p[e.offset + i];
    const double n = double(e.size()), mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
    if (is_layernorm_weight(e.name)) {
      CHECK(mean == 1.0);
      CHECK(sd == Approx(0.0).margin(1e-12));
    } else if (e.shape.size() == 1) {
      CHECK(sq == 0.0);
    } else {
      CHECK(std::abs(mean) < 4 * 0.02 / std::sqrt(n));
      CHECK(sd == Approx(0.02).epsilon(6 / std::sqrt(2 * n)));
    }
  }
  CHECK(is_layernorm_weight("gpt_neox.final_layer_norm.weight"));
  CHECK(is_layernorm_weight("gpt_neox.layers.3.post_attention_layernorm.weight"));
  CHECK_FALSE(is_layernorm_weight("gpt_neox.layers.3.post_attention_layernorm.bias"));
}

TEST_CASE("the memory estimate is what the model allocates", "[model]") {
  // (3, 7): the linear layers' operands are the largest bf16 copies, and with vocab 64 the
  // logits' (as in every Pythia); (2, 16): more scores than activations; (3, 2): T shorter than a
  // head. Attention tiles of 5 rows: 2, 4 and 1 tiles.
  for (auto [B, T] : {std::pair<Index, Index>{3, 7}, {2, 16}, {3, 2}})
    for (bool parallel : {true, false}) {
      auto cfg = tiny(parallel, "gelu", 0.5);
      if (!parallel) cfg.vocab_size = 64;
      for (std::size_t budget : {std::size_t(1), std::size_t(1) << 30})
        for (auto precision : {GemmPrecision::fp32, GemmPrecision::bf16})
          for (Index tile : {0, 5})
            for (auto recompute : {Recompute::none, Recompute::selective, Recompute::full}) {
              GptOptions o;
              o.recompute = recompute;
              o.attention_workspace_bytes = budget;
              o.gemm = precision;
              o.attention_tile = tile;
              View1<int32_t> ids("ids", B * T), tg("tg", B * T);
              set_tokens(ids, tg, cfg.vocab_size);
              OpCounter ops;
              const auto before = ops.peak_bytes();
              {  // a training step allocates nothing more (bf16: the input copies are sized up front)
                Gpt<float> m(cfg, B, T, o);
                m.init_random(1, 0.1);
                m.forward_backward(ids, tg, 1.0);
              }
              INFO("B=" << B << " T=" << T << " parallel=" << parallel << " budget=" << budget << " precision="
                        << to_string(precision) << " tile=" << tile << " recompute=" << to_string(recompute));
              CHECK(std::size_t(ops.peak_bytes() - before) == Gpt<float>::memory_bytes(cfg, B, T, o));
            }
    }
  // d = 12, 3d = 36, I = 20, V = 11, 3 heads of 4: A is dqkv [N, 36] (the logits' gradient
  // [N, 64] with vocab 64, as in every Pythia), B the MLP activation [N, 20] (fc2's weight gradient
  // reads it); never the weights or the scores, which their producers store in bf16.
  const auto cfg = tiny(true, "gelu", 0.5);
  GptOptions o;
  o.attention_workspace_bytes = std::size_t(1) << 30;
  CHECK(Gpt<float>::gemm_spans(cfg, 3, 7, o) == std::pair<Index, Index>{21 * 36, 21 * 20});
  CHECK(Gpt<float>::gemm_spans(cfg, 2, 16, o) == std::pair<Index, Index>{32 * 36, 32 * 20});
  auto big_vocab = cfg;
  big_vocab.vocab_size = 64;
  CHECK(Gpt<float>::gemm_spans(big_vocab, 3, 7, o) == std::pair<Index, Index>{21 * 64, 21 * 20});
  // the bf16 copies: none for fp32; floats on the host, bf16 on GPUs, each padded to 8 bytes
  CHECK(Gemm<float>::scratch_bytes(GemmPrecision::fp32, 3, 5) == 0);
  CHECK(Gemm<float>::scratch_bytes(GemmPrecision::bf16, 3, 5) == (kHostMemory ? 16 + 24 : 8 + 16));
}

TEST_CASE("recomputation: bitwise the gradients of stored activations, in one layer's memory", "[model]") {
  const Index B = 2, T = 7;
  for (bool parallel : {true, false})
    for (int how = 0; how < (kVendorGemm ? 2 : 3); ++how) {  // fp32, bf16 GEMMs; bf16 with the fused
                                                              // attention's emulation (host builds)
      auto cfg = tiny(parallel, parallel ? "gelu" : "gelu_fast", 0.5);
      cfg.num_hidden_layers = 3;  // two layers recomputed from shared buffers, the last one kept
      View1<int32_t> ids("ids", B * T), tg("tg", B * T);
      set_tokens(ids, tg, cfg.vocab_size);
      auto options = [&](Recompute r) {
        GptOptions o;
        o.recompute = r;
        if (how > 0) o.gemm = GemmPrecision::bf16;
        if (how == 2) o.fused = layers::FusedAttention::host_emulation({B, T, cfg.num_attention_heads, cfg.head_dim()});
        return o;
      };
      auto run = [&](Recompute r) {
        Gpt<float> m(cfg, B, T, options(r));
        m.init_random(3, 0.2);
        m.zero_grads();
        const double loss = m.forward_backward(ids, tg, 0.5);
        auto g = to_vec(m.grads);
        g.push_back(float(loss));
        return g;
      };
      INFO("parallel=" << parallel << " how=" << how);
      const auto none = run(Recompute::none);
      CHECK(run(Recompute::selective) == none);
      CHECK(run(Recompute::full) == none);
      if (how != 0) continue;
      // what is no longer kept, by hand (fp32, N = 14 tokens, d 12, I 20, 3 heads): per layer
      // LayerNorm outputs 2·N·d, GELU output N·I (selective); and fc1 N·I, qkv N·3d, attention
      // output N·d, LayerNorm statistics 4·N, log-sum-exp N·H (+ hmid N·d sequential) (full)
      const std::size_t cheap = 4 * (2 * 14 * 12 + 14 * 20);
      const std::size_t layer = cheap + 4 * (14 * 20 + 14 * 36 + 14 * 12 + 4 * 14 + 14 * 3 + (parallel ? 0 : 14 * 12));
      const auto bytes = [&](Recompute r) { return Gpt<float>::memory_bytes(cfg, B, T, options(r)); };
      CHECK(bytes(Recompute::none) - bytes(Recompute::selective) == 2 * cheap);
      CHECK(bytes(Recompute::none) - bytes(Recompute::full) == 2 * layer);
    }
}

TEST_CASE("bf16 GEMMs read the weights' bf16 copy, remade after every change of the weights", "[model]") {
  const auto cfg = tiny(true, "gelu", 0.5);
  const Index B = 2, T = 7;
  GptOptions o;
  o.gemm = GemmPrecision::bf16;
  View1<int32_t> ids("ids", B * T), tg("tg", B * T);
  set_tokens(ids, tg, cfg.vocab_size);
  Gpt<float> m(cfg, B, T, o), fresh(cfg, B, T, o);
  m.init_random(1, 0.1);
  const double loss1 = m.forward_backward(ids, tg, 1.0);
  const auto weights1 = to_vec(m.params);
  m.init_random(2, 0.1);  // init_random says so itself
  fresh.init_random(2, 0.1);
  CHECK(m.forward_backward(ids, tg, 1.0) == fresh.forward_backward(ids, tg, 1.0));
  from_vec(m.params, weights1);  // as a checkpoint read does, then says so
  m.params_changed();
  CHECK(m.forward_backward(ids, tg, 1.0) == loss1);
  CHECK(loss1 != fresh.forward_backward(ids, tg, 1.0));
}

TEST_CASE("gradient buckets cover the buffer once, in the order the backward pass ends them", "[model]") {
  for (bool parallel : {true, false}) {
    const auto cfg = tiny(parallel, "gelu", 0.5);
    const ParamLayout layout(cfg);
    const auto buckets = layout.gradient_buckets();
    REQUIRE(buckets.size() == std::size_t(cfg.num_hidden_layers + 2));
    std::vector<int> owner(std::size_t(layout.total), -1);
    for (std::size_t b = 0; b < buckets.size(); ++b)
      for (const auto& [begin, end] : buckets[b])
        for (Index i = begin; i < end; ++i) {
          REQUIRE(owner[std::size_t(i)] == -1);
          owner[std::size_t(i)] = int(b);
        }
    for (int o : owner) REQUIRE(o >= 0);
    auto bucket_of = [&](const std::string& name) { return owner[std::size_t(layout.at(name).offset)]; };
    CHECK(bucket_of(names::embed_out) == 0);
    CHECK(bucket_of(names::final_ln_b) == 0);
    CHECK(bucket_of(layer_prefix(1) + names::qkv_w) == 1);  // the last layer ends first
    CHECK(bucket_of(layer_prefix(1) + names::ln1_b) == 1);
    CHECK(bucket_of(layer_prefix(0) + names::fc2_b) == 2);
    CHECK(bucket_of(names::embed_in) == 3);
  }
}

TEST_CASE("the backward pass reports every bucket once, in order", "[model]") {
  const auto cfg = tiny(false, "gelu_fast", 1.0);
  Gpt<double> m(cfg, 2, 4);
  m.init_random(5, 0.1);
  View1<int32_t> ids("ids", 8), tg("tg", 8);
  set_tokens(ids, tg, cfg.vocab_size);
  std::vector<std::size_t> seen;
  m.on_gradients = [&](std::size_t b) { seen.push_back(b); };
  m.forward_backward(ids, tg, 1.0);
  CHECK(seen == std::vector<std::size_t>{0, 1, 2, 3});
  seen.clear();
  m.loss(ids, tg);  // no backward, no report
  CHECK(seen.empty());
}

TEST_CASE("the traffic estimate: what the fused attention and bf16 storage save", "[model]") {
  // Pythia-410M, micro_batch 4, T = 2048 (the GPU target shape): the bytes of one micro-batch.
  const auto c = ModelConfig::preset("pythia-410m", "test");
  const Index B = 4, T = 2048;
  GptOptions fp32, bf16, fused;
  bf16.gemm = fused.gemm = GemmPrecision::bf16;
  if (!kVendorGemm)
    fused.fused = layers::FusedAttention::host_emulation({1, 1, 1, 1});  // the estimate asks only whether
  const auto a = estimate_traffic(c, B, T, fp32), b = estimate_traffic(c, B, T, bf16),
             f = estimate_traffic(c, B, T, fused);
  INFO("fp32 " << a.total() / 1e9 << " GB (attention " << a.attention / 1e9 << "), bf16 " << b.total() / 1e9 << " ("
               << b.attention / 1e9 << "), fused " << f.total() / 1e9 << " (" << f.attention / 1e9 << ")");
  // The GEMM attention's scores: 64 pairs × 8 causal tiles (56% of 2048²), 15 passes over them
  // per layer in fp32 (forward: S written, read, P written, normalised in place, read by P·V;
  // backward: S and dP written, read, P and dS written, read by dV, dK and dQ), plus the heads:
  // 10.8 GB per layer (the 19 GB for the full T×T, times 56%).
  const double scores = 64.0 * layers::ScoreTiles(T, 256).per_pair();
  CHECK(a.attention / 24 > 15 * 4 * scores);
  CHECK(a.attention / 24 < 19 * 4 * scores);
  CHECK(b.attention < a.attention);  // P and dS stored in bf16
  if (fused.fused) {
    CHECK(f.attention < b.attention / 10);  // the scores never reach memory (measured 15×)
    CHECK(f.total() < b.total());
  }
  CHECK(b.total() < a.total());
}

TEST_CASE("random init: any slice made alone is that part of the whole", "[model]") {
  const auto cfg = tiny(false, "gelu", 0.5);
  const ParamLayout layout(cfg);
  std::vector<float> whole(std::size_t(layout.total));
  init_random_part(layout, 5, 0.3, 0, layout.total, whole.data());
  Gpt<float> m(cfg, 1, 2);
  m.init_random(5, 0.3);
  CHECK(to_vec(m.params) == whole);
  for (Index offset : {Index(0), Index(1), Index(17), layout.total / 2, layout.decay_end - 3})
    for (Index count : {Index(1), Index(33), layout.total - offset}) {
      std::vector<float> part(static_cast<std::size_t>(count));
      init_random_part(layout, 5, 0.3, offset, count, part.data());
      CHECK(std::equal(part.begin(), part.end(), whole.begin() + offset));
    }
}

// ZeRO-3's side of the model: a sharded Gpt asks for each unit's buffers (here copies of a flat
// buffer, made at every request) and computes bitwise what the flat model computes.
TEST_CASE("a sharded model computes unit by unit what the flat model does", "[model]") {
  const Index B = 2, T = 5;
  const auto cfg = tiny(false, "gelu", 0.5);
  for (const auto recompute : {Recompute::none, Recompute::full})
    for (const auto gemm : {GemmPrecision::fp32, GemmPrecision::bf16}) {
      GptOptions o;
      o.recompute = recompute, o.gemm = gemm;
      Gpt<float> flat(cfg, B, T, o);
      flat.init_random(9, 0.3);
      o.sharded = true;
      Gpt<float> sharded(cfg, B, T, o);
      CHECK(sharded.params.extent(0) == 0);
      const auto units = flat.layout().gradient_buckets();
      const auto p = host_copy(flat.params);
      std::vector<View1<float>> params, grads;
      std::vector<View1<Bf16Storage>> params16;
      std::vector<std::string> asked;
      for (const auto& ranges : units) {
        Index n = 0;
        for (const auto& [b, e] : ranges) n += e - b;
        params.emplace_back("unit", n), grads.emplace_back("unit_grads", n), params16.emplace_back("unit16", n);
      }
      sharded.units = [&](std::size_t u, UnitUse use, std::ptrdiff_t next) {
        asked.push_back(std::to_string(u) +
                        (use == UnitUse::forward    ? "f"
                         : use == UnitUse::backward ? "b"
                                                    : "g") +
                        std::to_string(next));
        auto h = Kokkos::create_mirror_view(params[u]);
        Index pos = 0;
        for (const auto& [b, e] : units[u])
          for (Index i = b; i < e; ++i) h(pos++) = p(i);
        Kokkos::deep_copy(params[u], h);
        auto h16 = Kokkos::create_mirror_view(params16[u]);
        for (Index i = 0; i < pos; ++i) h16(i) = to_bf16_storage(h(i));
        Kokkos::deep_copy(params16[u], h16);
        if (use != UnitUse::forward) Kokkos::deep_copy(grads[u], 0.0f);
        return UnitBuffers<float>{params[u].data(), gemm == GemmPrecision::bf16 ? params16[u].data() : nullptr,
                                  use == UnitUse::forward ? nullptr : grads[u].data()};
      };
      std::vector<float> got(std::size_t(flat.layout().total), 0.0f);
      sharded.on_gradients = [&](std::size_t u) {
        const auto h = host_copy(grads[u]);
        Index pos = 0;
        for (const auto& [b, e] : units[u])
          for (Index i = b; i < e; ++i) got[std::size_t(i)] = h(pos++);
      };
      View1<int32_t> ids("ids", B * T), tg("tg", B * T);
      set_tokens(ids, tg, cfg.vocab_size);
      flat.zero_grads();
      const double lf = flat.forward_backward(ids, tg, 1.0), ls = sharded.forward_backward(ids, tg, 1.0);
      CHECK(ls == lf);
      const auto want = to_vec(flat.grads);
      CHECK(got == want);
      // up from the embedding, each naming the next; down from the head; the embedding's gradients only
      CHECK(asked == std::vector<std::string>{"3f2", "2f1", "1f0", "0f1", "0b1", "1b2", "2b-1", "3g-1"});
      asked.clear();
      CHECK(sharded.loss(ids, tg) == flat.loss(ids, tg));  // no gradients: no next after the head
      CHECK(asked == std::vector<std::string>{"3f2", "2f1", "1f0", "0f-1"});
    }
}
