#pragma once
/// \file functional.hpp
/// The functional API the layers are built on; users may call it directly. Every function checks
/// its arguments and throws ShapeError / DTypeError naming the op and the shapes. All of them are
/// differentiable (to any order): they are either recorded ops whose backward is written with
/// differentiable ops, or composites of core ops. Images are NCHW.
#include <cstdint>
#include <optional>
#include <utility>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace tapegrad::nn::functional {

/// A pair of sizes (height, width) for kernels, strides, padding and dilation.
struct Size2 {
  int64_t h;  ///< height (rows)
  int64_t w;  ///< width (columns)
  /// The same size both ways; implicit on purpose: `Size2 s = 3`.
  Size2(int64_t both) : h(both), w(both) {}  // NOLINT
  /// Height and width.
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
/// One fused op: per row, μ and σ² in two vectorised passes and y in a third, keeping μ and
/// r = 1/√(σ² + ε); the first-order backward is one fused pass per row too, x̂ = (x − μ)·r,
///     dx = r·(g·γ − mean(g·γ) − x̂·mean(g·γ·x̂)),   dγ = Σ_rows g·x̂,   dβ = Σ_rows g,
/// and under create_graph the same formula in differentiable ops (gradients of every order).
/// DTypeError for an integer input or a γ/β of another dtype than x (as linear, conv2d, rms_norm).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
/// RMS normalisation over the trailing `normalized_shape` dimensions (PyTorch 2.4's F.rms_norm):
///     y = x / √(mean(x² over those dims) + ε) · γ
/// γ has shape normalized_shape and may be undefined; ε defaults to the dtype's machine epsilon
/// (1.19e-7 for float32, 2.22e-16 for float64), as PyTorch's eps=None. One fused pass forward
/// keeps r = 1/√(mean(x²) + ε) per row; the first-order backward is one fused pass too,
///     dx = r·(g·γ − x̂·mean(g·γ·x̂)),   dγ = Σ_rows g·x̂,   x̂ = x·r,
/// and under create_graph the same formula in differentiable ops (gradients of every order).
Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                std::optional<double> eps = std::nullopt);

// ---- misc layers (nn/layers.cpp) -----------------------------------------------------------------
/// Zeroes each element with probability p and scales the survivors by 1/(1 − p), so E[y] = x.
/// Identity when `training` is false or p = 0. Masks come from `gen`. DTypeError unless x is
/// floating (in evaluation too).
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());
/// Rows of `weight` [V, D] picked by the int64 `indices` of any shape: y has shape indices.shape + [D].
Tensor embedding(const Tensor& indices, const Tensor& weight);

// ---- losses (nn/loss.cpp) ---------------------------------------------------------------------------
/// How a loss combines its per-element values: none (keep them), mean or sum.
/// On an empty input, none gives an empty tensor and sum 0 (as PyTorch). The mean over nothing is
/// undefined: the class losses (cross_entropy, nll_loss) return NaN, as PyTorch does and as they
/// do when every target is ignored; the elementwise losses (mse_loss, half_mse_loss, l1_loss,
/// huber_loss, the binary cross-entropies) throw a ShapeError naming the loss and the shape, as
/// tapegrad::mean refuses zero elements (PyTorch returns NaN there).
enum class Reduction {
  none,  ///< the per-element losses, of the input's batch shape
  mean,  ///< their mean (a weighted mean where the loss takes class weights), a scalar
  sum,   ///< their sum, a scalar
};

/// Options of nll_loss and cross_entropy (PyTorch's keyword arguments) with chainable setters,
/// e.g. CrossEntropyOptions().reduction(Reduction::sum).ignore_index(0).weight(w).
/// `Derived` is the options struct the setters return.
template <class Derived>
struct ClassLossOptions {
  ///@{
  /// none: the per-element losses, shaped like the targets; sum; mean (weighted: see cross_entropy).
  Derived& reduction(Reduction r) { reduction_ = r; return self(); }
  Reduction reduction() const { return reduction_; }  ///< mean unless set
  ///@}
  ///@{
  /// Targets equal to this value contribute 0 and are left out of the mean's denominator (−100).
  Derived& ignore_index(int64_t i) { ignore_index_ = i; return self(); }
  int64_t ignore_index() const { return ignore_index_; }  ///< −100 unless set
  ///@}
  ///@{
  /// Class weights w [C] of the input's dtype (undefined: all 1). A constant: no gradient flows to it.
  Derived& weight(Tensor w) { weight_ = std::move(w); return self(); }
  const Tensor& weight() const { return weight_; }  ///< undefined (all 1) unless set
  ///@}

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
  Reduction reduction_ = Reduction::mean;
  int64_t ignore_index_ = -100;
  Tensor weight_;
};
/// nll_loss's options: reduction, ignore_index, weight.
struct NllLossOptions : ClassLossOptions<NllLossOptions> {};
/// cross_entropy's options: reduction, ignore_index, weight and label_smoothing.
struct CrossEntropyOptions : ClassLossOptions<CrossEntropyOptions> {
  ///@{
  /// ε ∈ [0, 1]: the target distribution is (1 − ε)·onehot(t) + ε/C (PyTorch's formula, below).
  CrossEntropyOptions& label_smoothing(double eps) { label_smoothing_ = eps; return *this; }
  double label_smoothing() const { return label_smoothing_; }
  ///@}

 private:
  double label_smoothing_ = 0;
};

/// Cross-entropy from logits and int64 class targets, PyTorch's F.cross_entropy (Keras's
/// SparseCategoricalCrossentropy(from_logits=True)). Layouts, the class dimension being 1:
///     logits [N, C] with targets [N],   or   logits [N, C, d1, ..., dk] with targets [N, d1, ..., dk].
/// With log-probabilities lp = log_softmax(x) along dim 1, class weights w (all 1 without
/// weight), label smoothing ε, and each element n (over N·d1·…·dk) whose target t_n ≠ ignore_index:
///     ℓ_n = (1 − ε)·w[t_n]·(−lp[n, t_n]) + (ε/C)·Σ_c w[c]·(−lp[n, c])
/// and ℓ_n = 0 where t_n = ignore_index. Reductions: none gives ℓ shaped like the targets; sum
/// gives Σ ℓ_n; mean gives Σ ℓ_n / Σ_{n not ignored} w[t_n] (the count of non-ignored targets
/// without weights) — PyTorch's, including with smoothing. A mean over targets that are all
/// ignored, or over no targets at all (N = 0 or an empty trailing dimension), is 0/0 = NaN, as in
/// PyTorch (its gradient is 0).
/// Targets must lie in [0, C) or equal ignore_index; anything else is a ShapeError naming the op,
/// the value and C, thrown before anything is recorded. Probability ("soft") targets are not
/// supported.
///
/// Fused and max-shifted (logits of ±1e4 give a finite loss and gradient): one pass forward keeps
/// the softmax p, and the first-order backward is one pass over it,
///     dℓ_n/dx[n, c] = p_c·((1 − ε)·w[t_n] + ε/C·Σ w) − (1 − ε)·w[t_n]·[c = t_n] − ε/C·w[c].
/// Under create_graph the same formula is recorded in differentiable ops (second order works).
///
/// A language model's logits [B, T, V] with targets [B, T] (int64) go in as rows,
///     cross_entropy(logits.reshape({B * T, V}), targets.reshape({B * T}), options)
/// (a view, no copy; the fastest path), or in PyTorch's layout: transpose(logits, 1, 2), [B, V, T].
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& options);
/// cross_entropy with only a reduction (the hot path of the MNIST examples): the same fused op.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction r = Reduction::mean);
/// Negative log-likelihood from log-probabilities, PyTorch's F.nll_loss, in cross_entropy's
/// layouts ([N, C] with [N], [N, C, d1, ...] with [N, d1, ...]):
///     ℓ_n = −w[t_n]·x[n, t_n]   (0 where t_n = ignore_index)
/// reduced like cross_entropy (mean divides by Σ_{n not ignored} w[t_n]; NaN over no targets).
/// A composite (gather), differentiable to any order.
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, const NllLossOptions& options);
/// nll_loss with only a reduction.
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, Reduction r = Reduction::mean);
/// (ŷ − y)², reduced (mean of an empty input: ShapeError, see Reduction).
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::mean);
/// The classic 1/(2n)·Σ(y − ŷ)² with n the number of samples (size of dimension 0; n = 0 is a
/// ShapeError naming the loss, as a mean over an empty input, see Reduction).
Tensor half_mse_loss(const Tensor& input, const Tensor& target);
/// |ŷ − y|, reduced (mean of an empty input: ShapeError, see Reduction).
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::mean);
/// Huber: ½d² where |d| ≤ δ, δ·(|d| − ½δ) elsewhere (d = ŷ − y), reduced (mean of an empty
/// input: ShapeError, see Reduction).
Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::mean, double delta = 1.0);
/// −[y·log p + (1 − y)·log(1 − p)] on probabilities p ∈ [0, 1], logs clamped at −100 (as PyTorch);
/// mean of an empty input: ShapeError, see Reduction.
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, Reduction r = Reduction::mean);
/// The same from logits, stably: softplus(x) − x·y (finite for any finite x); mean of an empty
/// input: ShapeError, see Reduction.
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
  ///@{
  /// A mask broadcastable to [..., T, S]: either additive and floating (q's dtype), added to the
  /// scaled scores (−∞ removes a key; such a mask may require grad), or bool with PyTorch's
  /// meaning: true takes part in attention, false is removed (it becomes where(mask, 0, −∞)).
  AttentionOptions& mask(const Tensor& m) {
    mask_ = m;
    return *this;
  }
  const Tensor& mask() const { return mask_; }
  ///@}
  ///@{
  /// Query i attends to keys j ≤ i only: PyTorch's is_causal, tril(ones(T, S)) aligned top-left
  /// (with S > T the last keys are never attended). Cannot be combined with a mask (as PyTorch).
  AttentionOptions& causal(bool on) {
    causal_ = on;
    return *this;
  }
  bool causal() const { return causal_; }
  ///@}
  ///@{
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
  ///@}
  /// The factor on q·kᵀ; 1/√d (d = q.size(-1)) when not set.
  AttentionOptions& scale(double s) {
    scale_ = s;
    scale_set_ = true;
    return *this;
  }
  /// The scale used for head dimension d: the one set, or 1/√d (1 for d = 0).
  double scale_for(int64_t d) const;
  ///@{
  /// Tile sizes of the fused kernel (rows of queries × rows of keys per tile). The defaults were
  /// measured (nn/attention.cpp); tests set small ones to cross tile boundaries at small sizes.
  AttentionOptions& tiles(int64_t query_rows, int64_t key_rows) {
    query_tile_ = query_rows;
    key_tile_ = key_rows;
    return *this;
  }
  int64_t query_tile() const { return query_tile_; }
  int64_t key_tile() const { return key_tile_; }
  ///@}

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
/// Self-attention on a packed projection, FlashAttention's "qkvpacked" layout: qkv [N, T, 3E] holds
/// q, k and v side by side in each row (the output of one [3E, E] in-projection, as
/// MultiheadAttention's in_proj_weight), each split into `heads` heads of d = E/heads columns; the
/// result is [N, T, E] with the heads side by side again, ready for the out-projection. The same
/// attention as scaled_dot_product_attention(q, k, v) on q, k, v = the heads as [N, H, T, d], with
/// the same kernels, options and dropout stream (masks broadcast to [N, H, T, T]), but q, k and v
/// are read in place and the gradient is written straight into one [N, T, 3E] buffer: none of the
/// head permutes, slices and their backward copies. One recorded op. Errors: qkv not [N, T, 3E]
/// with E a multiple of heads ≥ 1, not floating, and the options' errors.
Tensor qkv_packed_attention(const Tensor& qkv, int64_t heads, const AttentionOptions& options = AttentionOptions());
/// qkv_packed_attention as a composite of recorded ops (reshape, permute, slice, attention_reference's
/// formula, permute back): the reference it is tested against.
Tensor qkv_packed_attention_reference(const Tensor& qkv, int64_t heads,
                                      const AttentionOptions& options = AttentionOptions());

}  // namespace tapegrad::nn::functional

namespace tapegrad::nn {
namespace F = functional;
/// Registers conv2d, im2col, col2im, pooling, norms, linear, the losses and attention in the op
/// registry (float64 samples for gradcheck, float32 benchmark inputs for bench_registry).
/// Idempotent, and never needed: every program that includes this header (or nn.hpp, layers.hpp,
/// conv.hpp, norm.hpp, transformer.hpp, which include it) has them in `op_registry()` already,
/// through detail::ops_queued below.
void register_ops();
namespace detail {
/// Queues register_ops.cpp's ops with `register_op_group` (autograd/registry.hpp); they join the
/// registry at its next use. Cheap: no op is built before then.
bool queue_ops();
/// Initialised in every program that includes this header: referencing queue_ops also makes the
/// linker keep register_ops.cpp when it links a static libtapegrad.a.
inline const bool ops_queued = queue_ops();
}  // namespace detail
}  // namespace tapegrad::nn
