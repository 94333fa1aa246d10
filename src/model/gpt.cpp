#include "model/gpt.hpp"

#include <chrono>
#include <cmath>

#include "core/error.hpp"
#include "core/random.hpp"
#include "model/layers/cross_entropy.hpp"
#include "model/layers/elementwise.hpp"
#include "model/layers/embedding.hpp"
#include "model/layers/gelu.hpp"
#include "model/layers/layernorm.hpp"
#include "model/layers/linear.hpp"

namespace rewarm {
using namespace layers;

namespace {
ScoreTiles score_tiles(Index seq_len, const GptOptions& o) {
  return {seq_len, o.attention_tile > 0 ? o.attention_tile : ScoreTiles::auto_tile(seq_len)};
}
// With bf16 GEMMs (float models), activations read only by GEMMs are stored in bf16.
template <class T>
bool bf16_activations(const GptOptions& o) {
  return std::is_same_v<T, float> && o.gemm == GemmPrecision::bf16;
}

// Unit by unit: `at(entry)` is where that tensor starts.
template <class T, class At>
LayerTensors<T> bind_layer(const ParamLayout& layout, Index i, const At& at) {
  auto mat = [&](const std::string& n) {
    const auto& e = layout.at(layer_prefix(i) + n);
    return as_matrix(at(e), e.shape[0], e.shape[1]);
  };
  auto vec = [&](const std::string& n) {
    const auto& e = layout.at(layer_prefix(i) + n);
    return as_vector(at(e), e.shape[0]);
  };
  LayerTensors<T> l;
  l.ln1_w = vec(names::ln1_w);
  l.ln1_b = vec(names::ln1_b);
  l.ln2_w = vec(names::ln2_w);
  l.ln2_b = vec(names::ln2_b);
  l.qkv_w = mat(names::qkv_w);
  l.qkv_b = vec(names::qkv_b);
  l.dense_w = mat(names::dense_w);
  l.dense_b = vec(names::dense_b);
  l.fc1_w = mat(names::fc1_w);
  l.fc1_b = vec(names::fc1_b);
  l.fc2_w = mat(names::fc2_w);
  l.fc2_b = vec(names::fc2_b);
  return l;
}
template <class T, class At>
void bind_head(ModelTensors<T>& t, const ParamLayout& layout, const At& at) {  // final LayerNorm, output layer
  const auto& out = layout.at(names::embed_out);
  t.embed_out = as_matrix(at(out), out.shape[0], out.shape[1]);
  t.lnf_w = as_vector(at(layout.at(names::final_ln_w)), layout.at(names::final_ln_w).shape[0]);
  t.lnf_b = as_vector(at(layout.at(names::final_ln_b)), layout.at(names::final_ln_b).shape[0]);
}
template <class T, class At>
void bind_embedding(ModelTensors<T>& t, const ParamLayout& layout, const At& at) {
  const auto& e = layout.at(names::embed_in);
  t.embed_in = as_matrix(at(e), e.shape[0], e.shape[1]);
}
}  // namespace

template <class T>
ModelTensors<T> bind_tensors(const ParamLayout& layout, const ModelConfig& c, T* base) {
  const auto at = [base](const ParamEntry& e) { return base + e.offset; };
  ModelTensors<T> t;
  bind_embedding(t, layout, at);
  bind_head(t, layout, at);
  for (Index i = 0; i < c.num_hidden_layers; ++i) t.layers.push_back(bind_layer<T>(layout, i, at));
  return t;
}

template <class T>
void init_random_part(const ParamLayout& layout, std::uint64_t seed, double std, Index offset, Index count, T* out) {
  std::fill(out, out + count, T(0));
  std::uint64_t draws = 0;  // of the stream before each tensor: two per matrix element (Box-Muller)
  for (const auto& e : layout.entries) {
    const bool is_ln_weight = is_layernorm_weight(e.name);
    const bool is_bias = e.shape.size() == 1 && !is_ln_weight;  // every other 1-D tensor is a bias
    const Index lo = std::max(e.offset, offset), hi = std::min(e.offset + e.size(), offset + count);
    // splitmix64's state after k draws is seed + k·gamma: the slice's first draw without the others
    std::uint64_t s = seed + (draws + 2 * std::uint64_t(std::max<Index>(lo - e.offset, 0))) * kGoldenGamma;
    auto uniform = [&] { return splitmix64_uniform(s); };
    for (Index i = lo; i < hi; ++i) {
      T v = 0;
      if (is_ln_weight)
        v = 1;
      else if (!is_bias)
        v = T(std * std::sqrt(-2 * std::log(uniform())) * std::cos(2 * M_PI * uniform()));  // Box-Muller
      out[i - offset] = v;
    }
    if (!is_ln_weight && !is_bias) draws += 2 * std::uint64_t(e.size());
  }
}

namespace {
// A sharded model's tensors are bound unit by unit as it computes (Gpt::use_unit).
template <class T>
ModelTensors<T> unbound_tensors(const ModelConfig& c) {
  ModelTensors<T> t;
  t.layers.resize(std::size_t(c.num_hidden_layers));
  return t;
}
}  // namespace

template <class T>
Gpt<T>::Gpt(const ModelConfig& cfg, Index batch, Index seq_len, const GptOptions& options)
    : cfg_(cfg),
      layout_(cfg),
      params(options.sharded ? View1<T>() : View1<T>("rewarm::params", layout_.total)),
      grads(options.sharded ? View1<T>() : View1<T>("rewarm::grads", layout_.total)),
      B_(batch),
      T_(seq_len),
      gemm_(options.gemm),
      P_(options.sharded ? unbound_tensors<T>(cfg) : bind_tensors(layout_, cfg, params.data())),
      G_(options.sharded ? unbound_tensors<T>(cfg) : bind_tensors(layout_, cfg, grads.data())),
      rope_(make_rotary_tables(seq_len, cfg.rotary_dims(), cfg.rotary_emb_base)),
      recompute_(options.recompute),
      fused_(options.fused),
      sharded_(options.sharded) {
  if (sharded_) units_ = layout_.gradient_buckets();
  const Index N = B_ * T_, d = cfg.hidden_size, I = cfg.intermediate_size, L = cfg.num_hidden_layers;
  const Index BHT = B_ * cfg.num_attention_heads * T_;
  if (fused_) {
    const auto& f = fused_->shape();
    if (!std::is_same_v<T, float> || options.gemm != GemmPrecision::bf16)
      throw Error("the fused attention needs a float model with bf16 GEMMs");
    if (f.batch != B_ || f.seq != T_ || f.heads != cfg.num_attention_heads || f.hd != cfg.head_dim())
      throw Error("the fused attention's plans are for another shape");
  }
  const bool bf16_acts = bf16_activations<T>(options);
  auto buf16 = [](const char* name, Index n) {
    return View1<Bf16Storage>(Kokkos::view_alloc(std::string(name), Kokkos::WithoutInitializing), n);
  };
  auto mat = [&](const char* name, Index r, Index c) {
    return View2<T>(Kokkos::view_alloc(std::string(name), Kokkos::WithoutInitializing), r, c);
  };
  auto vec = [&](const char* name, Index n) {
    return View1<T>(Kokkos::view_alloc(std::string(name), Kokkos::WithoutInitializing), n);
  };
  for (Index l = 0; l <= L; ++l) h_.push_back(mat("rewarm::h", N, d));
  // full: every layer shares layer 0's buffers; selective: only the LayerNorm outputs and the
  // GELU activation are shared
  for (Index l = 0; l < L; ++l) {
    if (recompute_ == Recompute::full && l > 0) {
      acts_.push_back(acts_[0]);
      continue;
    }
    LayerActs a;
    if (recompute_ == Recompute::selective && l > 0) {
      a.ln1 = acts_[0].ln1, a.ln2 = acts_[0].ln2, a.act = acts_[0].act;
      a.ln1_16 = acts_[0].ln1_16, a.ln2_16 = acts_[0].ln2_16, a.act16 = acts_[0].act16;
    } else if (bf16_acts) {  // read only by bf16 GEMMs: stored in bf16 by the LayerNorms and the GELU
      a.ln1_16 = buf16("rewarm::ln1_bf16", N * d);
      a.ln2_16 = buf16("rewarm::ln2_bf16", N * d);
      a.act16 = buf16("rewarm::act_bf16", N * I);
    } else {
      a.ln1 = mat("rewarm::ln1", N, d);
      a.ln2 = mat("rewarm::ln2", N, d);
      a.act = mat("rewarm::act", N, I);
    }
    if (fused_) {
      a.qkv16 = buf16("rewarm::qkv_bf16", N * 3 * d);
      a.attn16 = buf16("rewarm::attn_bf16", N * d);
    } else {
      a.qkv = mat("rewarm::qkv", N, 3 * d);
      a.attn = mat("rewarm::attn", N, d);
    }
    if (!cfg.use_parallel_residual) a.hmid = mat("rewarm::hmid", N, d);
    a.fc1 = mat("rewarm::fc1", N, I);
    a.ln1_mean = vec("rewarm::ln1_mean", N);
    a.ln1_rstd = vec("rewarm::ln1_rstd", N);
    a.ln2_mean = vec("rewarm::ln2_mean", N);
    a.ln2_rstd = vec("rewarm::ln2_rstd", N);
    a.lse = vec("rewarm::lse", BHT);
    acts_.push_back(a);
  }
  if (bf16_acts)
    lnf16_ = buf16("rewarm::lnf_bf16", N * d);
  else
    lnf_ = mat("rewarm::lnf", N, d);
  lnf_mean_ = vec("rewarm::lnf_mean", N);
  lnf_rstd_ = vec("rewarm::lnf_rstd", N);
  logits_ = mat("rewarm::logits", N, cfg.vocab_size);
  tmp_a_ = mat("rewarm::attn_proj", N, d);
  tmp_m_ = mat("rewarm::mlp_out", N, d);
  dh_ = mat("rewarm::dh", N, d);
  dln1_ = mat("rewarm::dln1", N, d);
  dln2_ = mat("rewarm::dln2", N, d);
  dattn_ = mat("rewarm::dattn", N, d);
  dqkv_ = mat("rewarm::dqkv", N, 3 * d);
  dact_ = mat("rewarm::dact", N, I);
  if (fused_) {
    do16_ = buf16("rewarm::attn_dout_bf16", N * d);
    dqkv16_ = buf16("rewarm::dqkv_bf16", N * 3 * d);
    fused_ws_ =
        View1<char>(Kokkos::view_alloc(std::string("rewarm::fused_attention_workspace"), Kokkos::WithoutInitializing),
                    fused_->workspace_bytes());
  } else {
    attn_ws_ =
        AttentionWorkspace<T>({B_, T_, cfg.num_attention_heads, cfg.head_dim()}, options.attention_workspace_bytes,
                              options.attention_tile, options.gemm == GemmPrecision::bf16);
  }
  losses_ = View1<double>("rewarm::losses", N);
  token_rows_ = TokenRows(N);
  col_partials_ = column_scratch<T>(N, std::max(3 * d, I));
  if (options.gemm == GemmPrecision::bf16 && !sharded_)
    params16_ = View1<Bf16Storage>(Kokkos::view_alloc(std::string("rewarm::params_bf16"), Kokkos::WithoutInitializing),
                                   layout_.total);
  const auto [span_a, span_b] = gemm_spans(cfg, B_, T_, options);
  gemm_.reserve(span_a, span_b);
}

template <class T>
GptMemory Gpt<T>::memory_parts(const ModelConfig& c, Index B, Index T_len, const GptOptions& options) {
  const Index N = B * T_len, d = c.hidden_size, I = c.intermediate_size, L = c.num_hidden_layers,
              H = c.num_attention_heads, P = ParamLayout(c).total;
  GptMemory m;
  auto add = [](std::size_t& part, Index count, std::size_t elem, Index times = 1) {
    part += std::size_t(times) * allocation_bytes(count, elem);
  };
  const std::size_t t = sizeof(T), b16 = sizeof(Bf16Storage);
  if (!options.sharded) {  // sharded: the trainer's (ParamUnits)
    add(m.weights, P, t), add(m.gradients, P, t);
    if (options.gemm == GemmPrecision::bf16) add(m.weights_bf16, P, b16);
  }
  auto& a = m.activations;
  add(a, N * d, t, L + 1);  // residual stream
  const auto& fused = options.fused;
  const bool bf16_acts = bf16_activations<T>(options);
  // layers whose activations are kept: all, or one (full); whose LayerNorm outputs and GELU
  // activation are kept: all, or one (selective, full)
  const Index kept = options.recompute == Recompute::full ? 1 : L, cheap = options.recompute == Recompute::none ? L : 1;
  add(a, N * d, bf16_acts ? b16 : t, 2 * cheap), add(a, N * I, t, kept),
      add(a, N * I, bf16_acts ? b16 : t, cheap);  // ln1 ln2, fc1, act
  if (fused)
    add(a, N * 3 * d, b16, kept), add(a, N * d, b16, kept);  // qkv, attn in bf16
  else
    add(a, N * 3 * d, t, kept), add(a, N * d, t, kept);                              // qkv, attn
  if (!c.use_parallel_residual) add(a, N * d, t, kept);                              // hmid
  add(a, N, t, 4 * kept), add(a, N * H, t, kept);                                    // LayerNorm statistics, lse
  add(a, N * d, bf16_acts ? b16 : t), add(a, N, t, 2), add(a, N * c.vocab_size, t);  // final LayerNorm, logits
  add(a, T_len * (c.rotary_dims() / 2), sizeof(float), 2);                           // rotary tables
  add(a, N, sizeof(double));                                                         // token losses
  add(a, N, sizeof(std::int32_t), 2), add(a, N + 1, sizeof(std::int32_t));           // token rows
  auto& s = m.backward_buffers;
  add(s, N * d, t, 6), add(s, N * 3 * d, t), add(s, N * I, t);  // tmp_a tmp_m dh dln1 dln2 dattn, dqkv, dact
  add(s, ((N + layers::kColumnBlock - 1) / layers::kColumnBlock) * std::max(3 * d, I), t);  // column partials
  if (fused) {
    add(m.attention, N * d, b16), add(m.attention, N * 3 * d, b16);  // dO, dqkv in bf16
    add(m.cudnn_workspace, Index(fused->workspace_bytes()), 1);
  } else {
    add(m.attention, N * d, t, 7), add(m.attention, N * H, t);  // attention heads and gradients, delta
    const auto tiles = score_tiles(T_len, options);
    const bool bf16 = options.gemm == GemmPrecision::bf16;
    const Index group =
        AttentionWorkspace<T>::group_for({B, T_len, H, c.head_dim()}, options.attention_workspace_bytes, tiles, bf16);
    add(m.attention, group * tiles.per_pair(), t, 2);  // causal scores
    if (bf16 && !AttentionWorkspace<T>::kBf16InPlace)
      add(m.attention, group * tiles.per_pair(), b16, 2);  // P and dS in bf16 (in place on the host)
  }
  const auto [span_a, span_b] = gemm_spans(c, B, T_len, options);
  m.gemm_inputs = Gemm<T>::scratch_bytes(options.gemm, span_a, span_b);  // bf16 input copies
  return m;
}

template <class T>
std::size_t Gpt<T>::memory_bytes(const ModelConfig& c, Index B, Index T_len, const GptOptions& options) {
  return memory_parts(c, B, T_len, options).total();
}

// The largest first (A) and second (B) operands of this model's GEMMs that Gemm converts to
// bf16 itself, in elements: the gradients dy[N,out] (dyᵀ·x, dy·W; out: 3d, d, I, V), the
// attention's output [N,d] (GEMM attention) as the x of x·Wᵀ and dyᵀ·x, and the attention's head
// operands (group·T·hd ≤ N·d). The weights' bf16 copy, the attention's probabilities, the
// LayerNorm outputs and the MLP activation are stored in bf16 by their producers and need none.
template <class T>
std::pair<Index, Index> Gpt<T>::gemm_spans(const ModelConfig& c, Index B, Index T_len, const GptOptions& options) {
  const Index N = B * T_len, d = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  // stored in bf16 by their producers, the MLP activation and the LayerNorm outputs need no copy
  return {N * std::max({3 * d, I, V}), bf16_activations<T>(options) ? N * d : N * std::max(d, I)};
}

template <class T>
void Gpt<T>::init_random(std::uint64_t seed, double std) {
  if (sharded_) throw Error("a sharded model's parameters are initialised by their owner (ParamUnits)");
  auto h = Kokkos::create_mirror_view(params);
  init_random_part(layout_, seed, std, 0, layout_.total, h.data());
  Kokkos::deep_copy(params, h);
  params_changed();
}

template <class T>
void Gpt<T>::use_unit(std::size_t u, UnitUse use, std::ptrdiff_t next) {
  if (!sharded_) return;
  if (!units) throw Error("a sharded model needs Gpt::units");
  const UnitBuffers<T> b = units(u, use, next);
  const auto& ranges = units_[u];
  auto in = [&ranges, u](T* buf) {
    return [&ranges, u, buf](const ParamEntry& e) {  // where the entry sits among the unit's ranges
      Index pos = 0;
      for (const auto& [begin, end] : ranges) {
        if (e.offset >= begin && e.offset < end) return buf + pos + (e.offset - begin);
        pos += end - begin;
      }
      throw Error(e.name + " is not in unit " + std::to_string(u));
    };
  };
  const Index L = cfg_.num_hidden_layers;
  auto bind = [&](ModelTensors<T>& t, T* buf) {
    if (u == 0)
      bind_head(t, layout_, in(buf));
    else if (Index(u) == L + 1)
      bind_embedding(t, layout_, in(buf));
    else
      t.layers[std::size_t(L - Index(u))] = bind_layer<T>(layout_, L - Index(u), in(buf));
  };
  if (use != UnitUse::gradients) {
    bind(P_, b.params);
    unit_ = b;
  }
  if (use != UnitUse::forward) bind(G_, b.grads);
}

template <class T>
Stored<T> Gpt<T>::stored(const View2<T>& x, const View1<Bf16Storage>& x16, Index cols) const {
  if (x16.data()) return {Matrix<T>(), Bf16Matrix{as_matrix(x16.data(), tokens(), cols)}};
  return {as_matrix(x), Bf16Matrix{}};
}

template <class T>
Bf16Matrix Gpt<T>::w16(const Matrix<T>& W) const {
  if (sharded_ && unit_.params16)  // W is in the unit bound last
    return {as_matrix(unit_.params16 + (W.data() - unit_.params), W.extent(0), W.extent(1))};
  if (!params16_.data()) return {};
  return {batch_matrix(params16_, W.data() - params.data(), W.extent(0), W.extent(1))};
}

template <class T>
void Gpt<T>::zero_grads() {
  if (sharded_) return;
  Kokkos::deep_copy(ExecSpace(), grads, T(0));  // asynchronous: no fence
}

namespace {
// (Free functions: nvcc takes no device lambda inside a private member function.)
template <class T>
void weights_to_bf16(const View1<T>& src, const View1<Bf16Storage>& dst) {
  Kokkos::parallel_for(
      "rewarm::weights_to_bf16", Range(0, dst.extent(0)),
      KOKKOS_LAMBDA(Index i) { dst(i) = to_bf16_storage(float(src(i))); });
}
// Σ of the first `count` token losses, in double.
inline double sum_losses(const View1<double>& losses, Index count) {
  double total = 0;
  Kokkos::parallel_reduce(
      "rewarm::loss_sum", Range(0, count), KOKKOS_LAMBDA(Index i, double& s) { s += losses(i); }, total);
  return total;
}
}  // namespace

template <class T>
void Gpt<T>::targets_are_argmax(const View1<int32_t>& targets, const View1<int32_t>& hit) const {
  target_is_argmax(hit, as_matrix(logits_), targets);
}

template <class T>
double Gpt<T>::loss(const View1<int32_t>& ids, const View1<int32_t>& targets, Index count) {
  return run(ids, targets, 0, count, nullptr);
}

template <class T>
double Gpt<T>::forward_backward(const View1<int32_t>& ids, const View1<int32_t>& targets, double grad_scale,
                                const std::int32_t* host_ids) {
  if (grad_scale == 0) throw Error("Gpt::forward_backward: grad_scale 0 (Gpt::loss is the forward pass alone)");
  return run(ids, targets, grad_scale, -1, host_ids);
}

template <class T>
double Gpt<T>::run(const View1<int32_t>& ids, const View1<int32_t>& targets, double grad_scale, Index count,
                   const std::int32_t* host_ids) {
  const auto& c = cfg_;
  const auto t0 = std::chrono::steady_clock::now();
  if (grad_scale != 0) {  // before the layers: its host work needs no device, unless the ids are only there
    if (host_ids)
      token_rows_.build(host_ids);
    else
      token_rows_.build(host_copy(ids).data());
  }
  const Index L = c.num_hidden_layers;
  if (weights16_stale_ && gemm_.precision() == GemmPrecision::bf16 && !sharded_) {  // once per change of the weights
    weights_to_bf16(params, params16_);
    weights16_stale_ = false;
  }
  use_unit(std::size_t(L + 1), UnitUse::forward, L);  // sharded: each unit gathered as it is reached
  embedding_forward(as_matrix(h_[0]), ids, P_.embed_in);
  for (Index l = 0; l < L; ++l) {
    use_unit(std::size_t(L - l), UnitUse::forward, L - l - 1);
    layer_forward(l, true);
  }
  use_unit(0, UnitUse::forward, grad_scale != 0 && L > 0 ? 1 : -1);  // the backward pass starts with unit 0, then 1
  const auto lnf = stored(lnf_, lnf16_, c.hidden_size);
  layernorm_forward(lnf, flat(lnf_mean_), flat(lnf_rstd_), as_matrix(h_.back()), P_.lnf_w, P_.lnf_b, c.layer_norm_eps);
  linear_forward(gemm_, as_matrix(logits_), lnf, P_.embed_out, Vector<T>(), w16(P_.embed_out));
  cross_entropy(losses_, as_matrix(logits_), targets, grad_scale);
  const double total = sum_losses(losses_, count < 0 ? Index(losses_.extent(0)) : count);
  const auto t1 = std::chrono::steady_clock::now();  // the loss on the host: the forward pass is done
  if (grad_scale != 0) backward();
  if (timing.on) {
    kx::fence("rewarm::timing");
    timing.forward += std::chrono::duration<double>(t1 - t0).count();
    timing.backward += std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  }
  return total;
}

template <class T>
void Gpt<T>::layer_forward(Index l, bool output) {
  const auto& c = cfg_;
  const bool par = c.use_parallel_residual, tanh_gelu = c.tanh_gelu();
  const auto& p = P_.layers[l];
  auto& a = acts_[l];
  const auto h = as_matrix(h_[l]), hout = as_matrix(h_[l + 1]);
  // attention branch: dense(attn(rotary(qkv(LN1 h))))
  const auto ln1 = stored(a.ln1, a.ln1_16, c.hidden_size), ln2 = stored(a.ln2, a.ln2_16, c.hidden_size);
  const auto act = stored(a.act, a.act16, c.intermediate_size);
  layernorm_forward(ln1, flat(a.ln1_mean), flat(a.ln1_rstd), h, p.ln1_w, p.ln1_b, c.layer_norm_eps);
  const auto qkv = fused_ ? as_matrix(dqkv_) : as_matrix(a.qkv);  // fused: a scratch, then kept in bf16
  linear_forward(gemm_, qkv, ln1, p.qkv_w, p.qkv_b, w16(p.qkv_w));
  rotary_apply(qkv, rope_, T_, c.num_attention_heads, c.head_dim(), c.rotary_dims(), false);
  attention_forward_layer(l, qkv);
  linear_forward(gemm_, as_matrix(tmp_a_), stored(a.attn, a.attn16, c.hidden_size), p.dense_w,
                 Vector<T>(),  // the dense bias: in the residual add
                 w16(p.dense_w));
  // MLP branch reads LN2(h) (parallel) or LN2(h + attn) (sequential)
  const auto mlp_in = par ? h : as_matrix(a.hmid);
  if (!par) residual_add(as_matrix(a.hmid), h, as_matrix(tmp_a_), p.dense_b, Matrix<T>(), Vector<T>());
  layernorm_forward(ln2, flat(a.ln2_mean), flat(a.ln2_rstd), mlp_in, p.ln2_w, p.ln2_b, c.layer_norm_eps);
  linear_forward(gemm_, as_matrix(a.fc1), ln2, p.fc1_w, Vector<T>(), w16(p.fc1_w));
  bias_gelu_forward(as_matrix(a.fc1), act, p.fc1_b, tanh_gelu);
  if (!output) return;
  linear_forward(gemm_, as_matrix(tmp_m_), act, p.fc2_w, Vector<T>(), w16(p.fc2_w));
  if (par)  // h + (attn + b) + (mlp + b)
    residual_add(hout, h, as_matrix(tmp_a_), p.dense_b, as_matrix(tmp_m_), p.fc2_b);
  else
    residual_add(hout, as_matrix(a.hmid), as_matrix(tmp_m_), p.fc2_b, Matrix<T>(), Vector<T>());
}

// The buffers layer l shares hold the last layer's values after the forward pass, and layer
// l + 1's during the backward pass: layer l's are remade from what it kept, by the same kernels
// on the same inputs, so they are bitwise what the forward pass computed.
template <class T>
void Gpt<T>::recompute_layer(Index l) {
  if (recompute_ == Recompute::none || l == cfg_.num_hidden_layers - 1) return;
  if (recompute_ == Recompute::full) return layer_forward(l, false);
  const auto& c = cfg_;
  const auto& p = P_.layers[l];
  auto& a = acts_[l];
  const auto h = as_matrix(h_[l]), mlp_in = c.use_parallel_residual ? h : as_matrix(a.hmid);
  layernorm_forward(stored(a.ln1, a.ln1_16, c.hidden_size), flat(a.ln1_mean), flat(a.ln1_rstd), h, p.ln1_w, p.ln1_b,
                    c.layer_norm_eps);
  layernorm_forward(stored(a.ln2, a.ln2_16, c.hidden_size), flat(a.ln2_mean), flat(a.ln2_rstd), mlp_in, p.ln2_w,
                    p.ln2_b, c.layer_norm_eps);
  gelu_store(as_matrix(a.fc1), stored(a.act, a.act16, c.intermediate_size), c.tanh_gelu());
}

template <class T>
void Gpt<T>::attention_forward_layer(Index l, const Matrix<T>& qkv) {
  auto& a = acts_[l];
  if constexpr (std::is_same_v<T, float>) {
    if (fused_) {  // q, k, v stored once in bf16 where cuDNN reads them, and kept for the backward pass
      store_bf16(a.qkv16, qkv.data());
      fused_->forward(a.qkv16.data(), a.attn16.data(), a.lse.data(), fused_ws_.data());
      return;
    }
  }
  const AttentionShape shape{B_, T_, cfg_.num_attention_heads, cfg_.head_dim()};
  attention_forward(gemm_, as_matrix(a.attn), flat(a.lse), qkv, shape, attn_ws_);
}

template <class T>
void Gpt<T>::attention_backward_layer(Index l) {
  auto& a = acts_[l];
  if constexpr (std::is_same_v<T, float>) {
    if (fused_) {
      store_bf16(do16_, dattn_.data());
      fused_->backward(a.qkv16.data(), a.attn16.data(), do16_.data(), a.lse.data(), dqkv16_.data(), fused_ws_.data());
      load_bf16(dqkv_.data(), dqkv16_);
      return;
    }
  }
  const AttentionShape shape{B_, T_, cfg_.num_attention_heads, cfg_.head_dim()};
  attention_backward(gemm_, as_matrix(dqkv_), as_matrix(dattn_), as_matrix(a.attn), flat(a.lse), as_matrix(a.qkv),
                     shape, attn_ws_);
}

// Gradients flow from the logits back to the embedding, layer by layer; dh_ holds ∂L/∂h.
template <class T>
void Gpt<T>::backward() {
  const auto& c = cfg_;
  const bool par = c.use_parallel_residual, tanh_gelu = c.tanh_gelu();
  const auto dh = as_matrix(dh_);
  const auto& cols = col_partials_;
  const Index L = c.num_hidden_layers;
  use_unit(0, UnitUse::backward, L > 0 ? 1 : -1);
  linear_backward(gemm_, as_matrix(dln1_), G_.embed_out, Vector<T>(), as_matrix(logits_),
                  stored(lnf_, lnf16_, c.hidden_size), P_.embed_out, cols, false, w16(P_.embed_out));
  Kokkos::deep_copy(ExecSpace(), dh_, T(0));
  layernorm_backward(dh, G_.lnf_w, G_.lnf_b, as_matrix(dln1_), as_matrix(h_.back()), flat(lnf_mean_), flat(lnf_rstd_),
                     P_.lnf_w, cols);
  if (on_gradients) on_gradients(0);  // embed_out, final LayerNorm
  for (Index l = L - 1; l >= 0; --l) {
    use_unit(std::size_t(L - l), UnitUse::backward, l > 0 ? L - l + 1 : -1);
    recompute_layer(l);
    const auto &p = P_.layers[l], &g = G_.layers[l];
    auto& a = acts_[l];
    const auto h = as_matrix(h_[l]);
    const auto mlp_in = par ? h : as_matrix(a.hmid);
    // MLP branch: its output gradient is dh in both variants
    linear_backward(gemm_, as_matrix(dact_), g.fc2_w, g.fc2_b, dh, stored(a.act, a.act16, c.intermediate_size), p.fc2_w,
                    cols, false, w16(p.fc2_w));
    gelu_backward(flat(dact_), flat(dact_), flat(a.fc1), tanh_gelu);
    linear_backward(gemm_, as_matrix(dln2_), g.fc1_w, g.fc1_b, as_matrix(dact_), stored(a.ln2, a.ln2_16, c.hidden_size),
                    p.fc1_w, cols, false, w16(p.fc1_w));
    if (!par)  // dh becomes ∂L/∂hmid before the attention branch reads it
      layernorm_backward(dh, g.ln2_w, g.ln2_b, as_matrix(dln2_), mlp_in, flat(a.ln2_mean), flat(a.ln2_rstd), p.ln2_w,
                         cols);
    // attention branch
    linear_backward(gemm_, as_matrix(dattn_), g.dense_w, g.dense_b, dh, stored(a.attn, a.attn16, c.hidden_size),
                    p.dense_w, cols, false, w16(p.dense_w));
    attention_backward_layer(l);
    rotary_apply(as_matrix(dqkv_), rope_, T_, c.num_attention_heads, c.head_dim(), c.rotary_dims(), true);
    linear_backward(gemm_, as_matrix(dln1_), g.qkv_w, g.qkv_b, as_matrix(dqkv_), stored(a.ln1, a.ln1_16, c.hidden_size),
                    p.qkv_w, cols, false, w16(p.qkv_w));
    // residual: dh (identity path) += LayerNorm backward of each branch
    if (par)
      layernorm_backward(dh, g.ln2_w, g.ln2_b, as_matrix(dln2_), h, flat(a.ln2_mean), flat(a.ln2_rstd), p.ln2_w, cols);
    layernorm_backward(dh, g.ln1_w, g.ln1_b, as_matrix(dln1_), h, flat(a.ln1_mean), flat(a.ln1_rstd), p.ln1_w, cols);
    if (on_gradients) on_gradients(std::size_t(c.num_hidden_layers - l));
  }
  use_unit(std::size_t(L + 1), UnitUse::gradients, -1);
  embedding_backward(G_.embed_in, token_rows_, dh);
  if (on_gradients) on_gradients(std::size_t(c.num_hidden_layers + 1));
}

template class Gpt<float>;
template class Gpt<double>;
template ModelTensors<float> bind_tensors(const ParamLayout&, const ModelConfig&, float*);
template ModelTensors<double> bind_tensors(const ParamLayout&, const ModelConfig&, double*);
template void init_random_part(const ParamLayout&, std::uint64_t, double, Index, Index, float*);
template void init_random_part(const ParamLayout&, std::uint64_t, double, Index, Index, double*);

}  // namespace rewarm
