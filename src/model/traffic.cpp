#include "model/traffic.hpp"

namespace rewarm {

Traffic estimate_traffic(const ModelConfig& c, Index B, Index T, const GptOptions& o) {
  const double N = double(B * T), d = double(c.hidden_size), I = double(c.intermediate_size),
               V = double(c.vocab_size), L = double(c.num_hidden_layers), H = double(c.num_attention_heads),
               hd = double(c.head_dim()), rd = double(c.rotary_dims());
  const bool bf16 = o.gemm == GemmPrecision::bf16, fused = o.fused != nullptr;
  // fp32; what a bf16 GEMM reads: 2 bytes, as GPU builds store it (the host emulation's floats
  // holding bf16 values are its way of computing the same numbers, not a layout to estimate)
  const double f = 4, b = bf16 ? 2 : f;
  // A GEMM operand of n elements: read as stored (bf16 by its producer, or fp32 GEMMs), or
  // converted by Gemm first (read fp32, write and read the bf16 copy).
  auto operand = [&](double n, bool stored) { return !bf16 || stored ? n * b : n * (f + 2 * b); };
  const double s = bf16 ? b : f;  // activations only GEMMs read (LayerNorm and GELU outputs)
  // y[N,out] = x·Wᵀ (+ bias pass); backward dx = dy·W, dW += dyᵀ·x (read and written), db.
  auto linear_fwd = [&](double in, double out, bool x_stored, bool bias) {
    return operand(N * in, x_stored) + operand(out * in, true) + f * N * out + (bias ? 2 * f * N * out : 0);
  };
  auto linear_bwd = [&](double in, double out, bool x_stored, bool bias) {
    return operand(N * out, false) + operand(out * in, true) + f * N * in +          // dx
           operand(N * out, false) + operand(N * in, x_stored) + 2 * f * out * in +  // dW
           (bias ? f * N * out : 0);
  };
  const double layernorm_fwd = f * N * d + s * N * d, layernorm_bwd = 4 * f * N * d;  // dx accumulated
  const double rotary = 2 * f * (2 * N * H * rd);                                      // q and k, read and written

  double attn_fwd = 0, attn_bwd = 0;
  if (fused) {  // q, k, v stored in bf16; O and its statistics written; the scores stay on chip
    const double qkv16 = f * 3 * N * d + b * 3 * N * d, stats = f * N * H;
    attn_fwd = qkv16 + b * 3 * N * d + b * N * d + stats;
    attn_bwd = (f + b) * N * d                                          // dO in bf16
               + b * 3 * N * d + 2 * b * N * d + stats + b * 3 * N * d  // q, k, v, O, dO in; dq, dk, dv out
               + (b + f) * 3 * N * d;                                   // dqkv back to fp32
  } else {
    const layers::ScoreTiles tiles(T, o.attention_tile > 0 ? o.attention_tile : layers::ScoreTiles::auto_tile(T));
    const double pairs = double(B) * H, scores = pairs * double(tiles.per_pair());
    double seen = 0;  // key rows the tiles read, per pair
    for (Index i = 0; i < tiles.blocks; ++i) seen += double(tiles.cols(i));
    const double heads = N * d, keys = pairs * seen * hd;  // one head buffer; what the tiles read of K or V
    const double p = bf16 ? b : f;                          // the probabilities as the GEMMs read them
    const double moves = 2 * f * 3 * N * d;                 // qkv rows to head buffers (and back in backward)
    attn_fwd = moves + operand(heads, false) + operand(keys, false) + f * scores  // S = Q·Kᵀ
               + f * scores + p * scores + (bf16 ? 0 : 2 * f * scores)           // softmax (fp32: normalised in place)
               + p * scores + operand(keys, false) + f * heads                   // O = P·V
               + 2 * f * N * d;                                                  // heads merged
    attn_bwd = moves + 2 * f * N * d + 2 * f * N * d                                   // dO by heads, δ = dO·O
               + 2 * (operand(heads, false) + operand(keys, false) + f * scores)       // S and dP recomputed
               + 2 * f * scores + 2 * p * scores                                       // P and dS
               + 2 * (p * scores + operand(heads, false) + 2 * f * heads)              // dV, dK (accumulated)
               + p * scores + operand(keys, false) + f * heads;                        // dQ
  }
  const bool par = c.use_parallel_residual;
  const double residual = par ? 4 * f * N * d : 6 * f * N * d;
  const double layer_fwd = 2 * layernorm_fwd + linear_fwd(d, 3 * d, true, true) + rotary + attn_fwd +
                           linear_fwd(d, d, fused, false) + linear_fwd(d, I, true, false) +
                           (2 * f * N * I + s * N * I)  // bias + GELU: fc1 read and written, act written
                           + linear_fwd(I, d, true, false) + residual;
  const double layer_bwd = linear_bwd(I, d, true, true) + 3 * f * N * I  // fc2, GELU backward
                           + linear_bwd(d, I, true, true) + 2 * layernorm_bwd + linear_bwd(d, d, fused, true) +
                           attn_bwd + rotary + linear_bwd(d, 3 * d, true, true);
  Traffic t;
  t.forward = f * N * d                                              // embedding rows
              + L * layer_fwd + layernorm_fwd + linear_fwd(d, V, true, false) + 2 * f * N * V;  // logits, loss
  t.backward = L * layer_bwd + linear_bwd(d, V, true, false) + layernorm_bwd + 2 * f * N * d;  // embedding grads
  t.attention = L * (attn_fwd + attn_bwd);
  return t;
}

}  // namespace rewarm
