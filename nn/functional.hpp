#pragma once
/// \file functional.hpp
/// The functional API the layers are built on; users may call it directly. Every function checks
/// its arguments and throws ShapeError / DTypeError naming the op and the shapes. All of them are
/// differentiable (to any order): they are either recorded ops whose backward is written with
/// differentiable ops, or composites of core ops. Images are NCHW.
#include <cstdint>
#include <utility>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace tapegrad::nn::functional {

/// A pair of sizes (height, width) for kernels, strides, padding and dilation.
struct Size2 {
  int64_t h, w;
  Size2(int64_t both) : h(both), w(both) {}  // NOLINT: implicit on purpose, Size2 s = 3
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
};

// ---- linear and convolution (nn/linear_conv.cpp) ---------------------------------------------------
/// y = x·Wᵀ + b with x [..., in], W [out, in], b [out] (may be undefined). One gemm (the transpose
/// is a BLAS flag, not a copy) with the bias added in place; dx = g·W, dW = gᵀ·x, db = Σ_rows g.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

/// Unfolds sliding k_h×k_w patches of x [N, C, H, W] into columns [C·k_h·k_w, N·H_out·W_out]:
///     cols[(c, i, j), (n, p, q)] = x[n, c, p·s_h − pad_h + i·d_h, q·s_w − pad_w + j·d_w]  (0 outside)
/// with H_out = ⌊(H + 2·pad_h − d_h·(k_h − 1) − 1) / s_h⌋ + 1. Linear; its gradient is col2im.
Tensor im2col(const Tensor& x, Size2 kernel, Size2 stride = 1, Size2 padding = 0, Size2 dilation = 1);
/// The adjoint of im2col: sums columns back into an image of `input_shape` [N, C, H, W].
Tensor col2im(const Tensor& cols, const Shape& input_shape, Size2 kernel, Size2 stride = 1, Size2 padding = 0,
              Size2 dilation = 1);

/// 2-D cross-correlation (PyTorch's conv2d): x [N, C, H, W], W [O, C, k_h, k_w], b [O] (may be undefined)
///     y[n, o, p, q] = b[o] + Σ_{c,i,j} W[o, c, i, j] · x[n, c, p·s − pad + i·d, q·s − pad + j·d]
/// computed image by image as one gemm W[O, C·k·k] · im2col(x_n) written straight into y[n] (the
/// columns of one image stay in cache; no permute). One recorded op; its gradients are two more
///     dx_n = col2im(Wᵀ · g_n),   dW = Σ_n g_n · im2col(x_n)ᵀ,   db = Σ_{n,p,q} g
/// (conv2d_input_grad, conv2d_weight_grad, conv2d_bias_grad), and those three are each other's
/// backward, so gradients of every order are recorded.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Size2 stride = 1,
              Size2 padding = 0, Size2 dilation = 1);

// ---- pooling (nn/pool.cpp) -----------------------------------------------------------------------
/// Max over each k_h×k_w window (padding counts as −∞; stride defaults to the kernel). The gradient
/// flows to the first maximal element of each window (as PyTorch; a NaN counts as maximal). One
/// recorded op that keeps each window's argmax; backward scatters onto it with a recorded op whose
/// own backward gathers it again.
Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride = 0, Size2 padding = 0);
/// Mean over each window, padding counted as zeros in the divisor k_h·k_w (PyTorch's default
/// count_include_pad). Stride defaults to the kernel.
Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride = 0, Size2 padding = 0);

// ---- normalisation (nn/norm.cpp) ------------------------------------------------------------------
/// Batch normalisation over every axis but 1 (x is [N, C] or [N, C, ...]):
///     y = (x − μ) / √(σ² + ε) · γ + β
/// In training μ, σ² are the batch statistics (σ² biased) and the running statistics are updated
/// in place: r ← (1 − momentum)·r + momentum·stat, using the unbiased variance (as PyTorch). In
/// evaluation the running statistics are used. γ, β and the running tensors may be undefined.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum = 0.1, double eps = 1e-5);
/// Layer normalisation over the trailing `normalized_shape` dimensions:
///     y = (x − μ) / √(σ² + ε) · γ + β   (σ² biased; γ, β of normalized_shape, may be undefined)
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

// ---- misc layers (nn/layers.cpp) -----------------------------------------------------------------
/// Zeroes each element with probability p and scales the survivors by 1/(1 − p), so E[y] = x.
/// Identity when `training` is false or p = 0. Masks come from `gen`.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());
/// Rows of `weight` [V, D] picked by the int64 `indices` of any shape: y has shape indices.shape + [D].
Tensor embedding(const Tensor& indices, const Tensor& weight);

// ---- losses (nn/loss.cpp) ---------------------------------------------------------------------------
enum class Reduction { none, mean, sum };

/// Sparse categorical cross-entropy from logits [N, C] and int64 class targets [N] (Keras's
/// SparseCategoricalCrossentropy(from_logits=True), PyTorch's cross_entropy):
///     ℓ_n = logsumexp(x_n) − x_n[t_n]
/// Fused and max-shifted: logits of ±1e4 give finite loss and gradient softmax(x) − onehot(t).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction r = Reduction::mean);
/// Negative log-likelihood from log-probabilities [N, C] and int64 targets [N]: ℓ_n = −x_n[t_n].
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, Reduction r = Reduction::mean);
/// (ŷ − y)², reduced.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::mean);
/// The classic 1/(2n)·Σ(y − ŷ)² with n the number of samples (size of dimension 0).
Tensor half_mse_loss(const Tensor& input, const Tensor& target);
/// |ŷ − y|, reduced.
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::mean);
/// Huber: ½d² where |d| ≤ δ, δ·(|d| − ½δ) elsewhere (d = ŷ − y), reduced.
Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::mean, double delta = 1.0);
/// −[y·log p + (1 − y)·log(1 − p)] on probabilities p ∈ [0, 1], logs clamped at −100 (as PyTorch).
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, Reduction r = Reduction::mean);
/// The same from logits, stably: softplus(x) − x·y (finite for any finite x).
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        Reduction r = Reduction::mean);

// ---- attention (nn/attention.cpp) -------------------------------------------------------------------
/// Options of scaled_dot_product_attention, with chainable setters (the optimizers' style rather
/// than PyTorch's positional signature, so a call names what it sets):
///
///     F::scaled_dot_product_attention(q, k, v, F::AttentionOptions().causal(true).dropout(0.1, gen));
///
/// PyTorch's `attn_mask, is_causal, dropout_p, scale` map to mask, causal, dropout, scale.
struct AttentionOptions {
  /// A mask broadcastable to [..., T, S]: either additive and floating (q's dtype), added to the
  /// scaled scores (−∞ removes a key; such a mask may require grad), or bool with PyTorch's
  /// meaning: true takes part in attention, false is removed (it becomes where(mask, 0, −∞)).
  AttentionOptions& mask(const Tensor& m) {
    mask_ = m;
    return *this;
  }
  const Tensor& mask() const { return mask_; }
  /// Query i attends to keys j ≤ i only: PyTorch's is_causal, tril(ones(T, S)) aligned top-left
  /// (with S > T the last keys are never attended). Cannot be combined with a mask (as PyTorch).
  AttentionOptions& causal(bool on) {
    causal_ = on;
    return *this;
  }
  bool causal() const { return causal_; }
  /// Dropout on the attention weights with probability p ∈ [0, 1), survivors scaled by 1/(1 − p).
  /// Applied whenever p > 0 (as PyTorch's dropout_p: pass 0 in evaluation). The masks come from
  /// one 64-bit draw of `gen` (the calling thread's default generator when none is given), which
  /// seeds a counter-based hash of (batch·head, query, key): the recomputing backward sees the
  /// same dropped entries, and the fused op and attention_reference drop the same entries for
  /// generators in the same state. The generator must outlive the call only.
  AttentionOptions& dropout(double p) {
    dropout_ = p;
    return *this;
  }
  AttentionOptions& dropout(double p, Generator& gen) {
    dropout_ = p;
    generator_ = &gen;
    return *this;
  }
  double dropout() const { return dropout_; }
  Generator* generator() const { return generator_; }
  /// The factor on q·kᵀ; 1/√d (d = q.size(-1)) when not set.
  AttentionOptions& scale(double s) {
    scale_ = s;
    scale_set_ = true;
    return *this;
  }
  /// The scale used for head dimension d: the one set, or 1/√d (1 for d = 0).
  double scale_for(int64_t d) const;
  /// Tile sizes of the fused kernel (rows of queries × rows of keys per tile). The defaults were
  /// measured (nn/attention.cpp); tests set small ones to cross tile boundaries at small sizes.
  AttentionOptions& tiles(int64_t query_rows, int64_t key_rows) {
    query_tile_ = query_rows;
    key_tile_ = key_rows;
    return *this;
  }
  int64_t query_tile() const { return query_tile_; }
  int64_t key_tile() const { return key_tile_; }

 private:
  Tensor mask_;
  bool causal_ = false;
  double dropout_ = 0.0;
  Generator* generator_ = nullptr;
  double scale_ = 0.0;
  bool scale_set_ = false;
  int64_t query_tile_ = 128, key_tile_ = 128;
};

/// Scaled dot-product attention (PyTorch 2.x's scaled_dot_product_attention), one recorded op:
///     out = dropout(softmax(q·kᵀ·scale + mask)) · v
/// q [..., T, d], k [..., S, d], v [..., S, dv] → out [..., T, dv]; the leading (batch, head)
/// dimensions, any number ≥ 0, must be equal in q, k and v (no broadcasting between them).
///
/// FlashAttention-style: for each batch·head, query tiles × key tiles; a scores tile is one gemm,
/// the softmax is online (running max m and sum l per query row, the output accumulator rescaled
/// by exp(m_old − m_new) and written once), and tiles wholly above the causal diagonal are skipped.
/// Saved for backward: the inputs, the output and one log-sum-exp per query row (lse = m + log l,
/// [..., T]) — O(B·H·T) beyond the inputs and output, never the T×S weights. The first-order
/// backward (FlashAttention-2) recomputes each tile's P = exp(q·kᵀ·scale + mask − lse):
///     D_i = Σ_c dO_ic·O_ic,  dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ∘ (dP − D),
///     dQ += dS·K·scale,  dK += dSᵀ·Q·scale,  dmask = dS (summed to the mask's shape)
/// computing only the gradients needed. Under create_graph the backward is the same formula in
/// differentiable ops over the full T×S matrices (as cross_entropy does), so every order works.
///
/// A query row whose keys are all masked (−∞) gives output 0 and gradient 0 (PyTorch's math
/// kernel gives NaN there, its fused kernels 0); attention_reference does the same.
/// Errors (ShapeError / DTypeError / std::invalid_argument naming the op and the shapes, nothing
/// recorded): head dimensions of q and k differ, k and v differ in S, batch dimensions differ, a
/// mask not broadcastable to [..., T, S] or of another dtype, dtypes differ, dropout outside
/// [0, 1), causal together with a mask, tiles < 1.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options = AttentionOptions());
/// The same attention as a composite of recorded ops: matmul, mask add, softmax (with fully
/// masked rows set to 0), dropout, matmul. It keeps the T×S weights for backward; the reference
/// the fused op is tested and benchmarked against. Same options, checks and dropout masks.
Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v,
                           const AttentionOptions& options = AttentionOptions());

}  // namespace tapegrad::nn::functional

namespace tapegrad::nn {
namespace F = functional;
/// Registers conv2d, im2col, col2im, pooling, norms, linear and the losses in the op registry
/// (float64 samples) so the registry test gradchecks them. Idempotent.
void register_ops();
}  // namespace tapegrad::nn
