// GPT-NeoX forward and backward on flat parameter/gradient buffers (docs/numerics.md).
// Templated on the scalar so every layer and the whole model can be checked in double.
#pragma once
#include <functional>
#include <utility>
#include <vector>

#include "model/config.hpp"
#include "model/layers/attention.hpp"
#include "model/layers/embedding.hpp"
#include "model/layers/fused_attention.hpp"
#include "model/layers/rotary.hpp"
#include "model/layers/stored.hpp"
#include "model/param_layout.hpp"
#include "model/recompute.hpp"

namespace rewarm {

// The tensors of one layer inside a flat buffer (parameters or gradients).
template <class T>
struct LayerTensors {
  Vector<T> ln1_w, ln1_b, ln2_w, ln2_b, qkv_b, dense_b, fc1_b, fc2_b;
  Matrix<T> qkv_w, dense_w, fc1_w, fc2_w;
};
template <class T>
struct ModelTensors {
  Matrix<T> embed_in, embed_out;
  Vector<T> lnf_w, lnf_b;
  std::vector<LayerTensors<T>> layers;
};
template <class T>
ModelTensors<T> bind_tensors(const ParamLayout& layout, const ModelConfig& c, T* base);
// Elements [offset, offset + count) of Gpt::init_random's flat parameters (padding 0) into out:
// any slice computed alone is the same as the whole (a ZeRO-3 rank makes only its own).
template <class T>
void init_random_part(const ParamLayout& layout, std::uint64_t seed, double std, Index offset, Index count, T* out);

// ZeRO-3 (GptOptions::sharded): the model computes one unit at a time (unit b is
// ParamLayout::gradient_buckets()[b]: 0 the final LayerNorm and output layer, L - l layer l,
// L + 1 the embedding) and asks for each unit's buffers just before it computes with them.
enum class UnitUse {
  forward,    // its parameters
  backward,   // its parameters, and zeroed gradients to accumulate into
  gradients,  // zeroed gradients only (the embedding's backward reads no weights)
};
template <class T>
struct UnitBuffers {  // each holds the unit's ranges one after another
  T* params = nullptr;
  Bf16Storage* params16 = nullptr;  // the parameters in bf16 (bf16 GEMMs)
  T* grads = nullptr;
};

// How the model computes (the [precision] and [memory] tables): not what it computes.
struct GptOptions {
  GemmPrecision gemm = GemmPrecision::fp32;
  std::size_t attention_workspace_bytes = std::size_t(4096) << 20;  // causal scores of a group of heads
  Index attention_tile = 0;  // score rows per causal tile (layers::ScoreTiles); 0: ScoreTiles::auto_tile
  // The fused attention's plans for this model's shape (choose_attention); null: the GEMM
  // attention. Needs float and bf16 GEMMs: q, k, v and the attention's output are then kept in
  // bf16 only.
  std::shared_ptr<layers::FusedAttention> fused;
  Recompute recompute = Recompute::none;
  // ZeRO-3: params, grads and their bf16 copy are not allocated; Gpt::units supplies each unit's.
  bool sharded = false;
};

// What a Gpt allocates, by part (bytes, each allocation padded to 8 as Kokkos does).
struct GptMemory {
  std::size_t weights = 0, weights_bf16 = 0, gradients = 0;
  std::size_t activations = 0;       // kept for the backward pass (residual stream, layers, logits)
  std::size_t backward_buffers = 0;  // the gradients of the activations of one layer at a time
  std::size_t attention = 0;         // the attention's workspace (GEMM: heads and scores; fused: dO, dqkv)
  std::size_t cudnn_workspace = 0;   // the fused attention's
  std::size_t gemm_inputs = 0;       // bf16 copies of GEMM operands made at the call
  std::size_t total() const {
    return weights + weights_bf16 + gradients + activations + backward_buffers + attention + cudnn_workspace +
           gemm_inputs;
  }
};

template <class T>
class Gpt {
  ModelConfig cfg_;
  ParamLayout layout_;  // before the buffers it sizes

 public:
  // Activations are sized for `batch` sequences of `seq_len` tokens.
  Gpt(const ModelConfig& cfg, Index batch, Index seq_len, const GptOptions& options = {});
  // Bytes the constructor allocates (parameters, gradients, activations, workspaces, bf16 GEMM
  // input copies): the estimate checked against a GPU's free memory before any allocation. A
  // test holds it exact.
  static std::size_t memory_bytes(const ModelConfig& cfg, Index batch, Index seq_len, const GptOptions& options = {});
  static GptMemory memory_parts(const ModelConfig& cfg, Index batch, Index seq_len, const GptOptions& options = {});
  // The largest first and second GEMM operands (elements): what the bf16 input copies hold.
  static std::pair<Index, Index> gemm_spans(const ModelConfig& cfg, Index batch, Index seq_len,
                                            const GptOptions& options);

  const ModelConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  View1<T> params, grads;  // flat, layout() offsets; grads accumulate until zero_grads()

  void init_random(std::uint64_t seed, double std);  // normal(0,std) matrices, zero bias, LN 1/0
  void zero_grads();                                 // sharded: nothing (each unit's gradients come zeroed)
  // Whoever writes params (a checkpoint read, the optimizer step, a gather of ZeRO's slices)
  // calls this: with bf16 GEMMs the next forward pass remakes the weights' bf16 copy, once per
  // change rather than at every GEMM call.
  void params_changed() { weights16_stale_ = true; }

  // ids, targets [batch·seq_len]. The forward pass: Σ token losses over the first `count` tokens
  // (all by default).
  double loss(const View1<int32_t>& ids, const View1<int32_t>& targets, Index count = -1);
  // The forward and the backward pass: Σ token losses, and grads += grad_scale·∂(Σ losses)/∂params
  // (grad_scale != 0). host_ids, the same ids in host memory where the caller has them, spare a
  // GPU the wait for copying them back (the embedding gradient's row lists are built on the host).
  double forward_backward(const View1<int32_t>& ids, const View1<int32_t>& targets, double grad_scale,
                          const std::int32_t* host_ids = nullptr);

  Index tokens() const { return B_ * T_; }
  // Called during the backward pass with the index of each ParamLayout::gradient_buckets() entry
  // as soon as its gradient kernels are enqueued (to start reducing it while the rest computes).
  std::function<void(std::size_t)> on_gradients;
  // Sharded (ZeRO-3): unit `unit`'s buffers for `use`; `next` is the unit whose parameters it
  // will ask for after this one (-1: none), to be gathered meanwhile. The buffers stay valid
  // until the model asks for the unit after next. The gathers behind it are collective: every
  // rank must make the same loss() and forward_backward() calls, in the same order (evaluation
  // gives each rank the same number of passes: one with fewer windows computes its last batch
  // again, counting none).
  std::function<UnitBuffers<T>(std::size_t unit, UnitUse use, std::ptrdiff_t next)> units;
  // With `on`, loss() and forward_backward() fence between the phases and add their seconds here
  // (benchmarks).
  struct Timing {
    bool on = false;
    double forward = 0, backward = 0;
  } timing;
  const Gemm<T>& gemm() const { return gemm_; }
  // Logits [batch·seq_len, vocab] of the last forward pass made without gradients (with
  // gradients they are overwritten by the loss gradient).
  const View2<T>& logits() const { return logits_; }
  // After loss(): each token's −log p(target), in double (rows of the batch, position by position).
  const View1<double>& token_losses() const { return losses_; }
  // After loss(): hit[n] = 1 where target n is the argmax of its logits (greedy decoding's choice).
  void targets_are_argmax(const View1<int32_t>& targets, const View1<int32_t>& hit) const;

 private:
  struct LayerActs {
    View2<T> ln1, qkv, attn, hmid, ln2, fc1, act;  // qkv and attn: GEMM attention only
    View1<T> ln1_mean, ln1_rstd, ln2_mean, ln2_rstd, lse;
    View1<Bf16Storage> qkv16, attn16;          // fused attention: qkv after rotary, and its output, in bf16
    View1<Bf16Storage> ln1_16, ln2_16, act16;  // bf16 GEMMs: ln1, ln2 and act as the GEMMs read them
  };
  // x (or, with bf16 GEMMs, x16) as the layer producing it stores it, `cols` wide.
  layers::Stored<T> stored(const View2<T>& x, const View1<Bf16Storage>& x16, Index cols) const;
  double run(const View1<int32_t>& ids, const View1<int32_t>& targets, double grad_scale, Index count,
             const std::int32_t* host_ids);  // the forward pass, and the backward pass where grad_scale != 0
  void backward();
  // Layer l's forward pass from h_[l]; with `output`, also its output h_[l+1] (a recomputation
  // has it already).
  void layer_forward(Index l, bool output);
  void recompute_layer(Index l);  // before layer l's backward: what the forward pass did not keep
  // The attention of layer l from qkv_in (after rotary; fused: any scratch) into the layer's
  // output, and its backward from dattn_ into dqkv_: GEMM or fused.
  void attention_forward_layer(Index l, const Matrix<T>& qkv_in);
  void attention_backward_layer(Index l);
  Bf16Matrix w16(const Matrix<T>& W) const;  // W's bf16 copy in params16_ (empty without bf16)
  // Sharded: binds unit u's tensors in P_ and G_ to the buffers units() gives for `use`.
  void use_unit(std::size_t u, UnitUse use, std::ptrdiff_t next);

  Index B_, T_;
  Gemm<T> gemm_;
  ModelTensors<T> P_, G_;
  layers::RotaryTables rope_;
  std::vector<View2<T>> h_;  // residual stream entering each layer, h_[L] leaves the last
  // One per layer; entries share buffers where they are recomputed (recompute_).
  std::vector<LayerActs> acts_;
  Recompute recompute_;
  View2<T> lnf_, logits_, tmp_a_, tmp_m_, dh_, dln1_, dln2_, dattn_, dqkv_, dact_;
  View1<T> lnf_mean_, lnf_rstd_;
  View1<Bf16Storage> lnf16_;  // bf16 GEMMs: lnf_ in bf16
  layers::AttentionWorkspace<T> attn_ws_;
  layers::TokenRows token_rows_;  // which batch rows hold each token id (embedding gradient)
  View1<T> col_partials_;         // scratch of the column reductions (bias and LayerNorm gradients)
  View1<double> losses_;
  View1<Bf16Storage> params16_;  // bf16 GEMMs: the weights as the GEMMs read them
  std::shared_ptr<layers::FusedAttention> fused_;
  View1<Bf16Storage> do16_, dqkv16_;  // fused attention: dO and dqkv in bf16
  View1<char> fused_ws_;              // and its workspace
  bool weights16_stale_ = true;
  bool sharded_ = false;
  std::vector<std::vector<std::pair<Index, Index>>> units_;  // sharded: each unit's flat ranges
  UnitBuffers<T> unit_;                                      // sharded: the unit bound last with parameters
};

extern template class Gpt<float>;
extern template class Gpt<double>;

}  // namespace rewarm
