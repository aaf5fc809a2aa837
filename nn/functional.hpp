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

}  // namespace tapegrad::nn::functional

namespace tapegrad::nn {
namespace F = functional;
/// Registers conv2d, im2col, col2im, pooling, norms, linear and the losses in the op registry
/// (float64 samples) so the registry test gradchecks them. Idempotent.
void register_ops();
}  // namespace tapegrad::nn
