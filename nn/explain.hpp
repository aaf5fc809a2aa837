#pragma once
/// \file explain.hpp
/// Attributions: which input values a prediction depends on, computed with gradients.
///
///   - saliency          |∂y/∂x|                                      (Simonyan et al., 2014)
///   - gradient × input  x · ∂y/∂x
///   - SmoothGrad        mean of |∂y/∂x| (or ∂y/∂x) at x + N(0, σ²)    (Smilkov et al., 2017)
///   - Integrated Gradients (x − x′) · ∫₀¹ ∂y/∂x (x′ + α(x − x′)) dα  (Sundararajan et al., 2017)
///
/// `y` is one score per sample, picked from the output of any differentiable function of a batched
/// input by a `Target`: a class (logit or probability), a chosen token's log-probability in a
/// language model, a per-sample loss. Every function takes either a `Forward` (batched input
/// [N, ...] → output with N rows) or a `UnaryModule&` (run in eval mode, its modes restored after):
///
///     nn::Sequential model(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
///     Tensor s = nn::saliency(model, images, nn::Target::class_index(3));            // [N,1,28,28]
///     auto ig = nn::integrated_gradients(model, images, nn::Target::class_indices(labels),
///                                        nn::IntegratedGradientsOptions().steps(64));
///     ig.attributions;                 // [N,1,28,28]
///     ig.max_relative_error();         // completeness: |Σ attr − (F(x) − F(x′))| / |F(x) − F(x′)|
///
/// The gradients come from tapegrad::grad with respect to the input only: the engine skips every
/// node that leads only to parameters (their gradients are never computed), no parameter's grad()
/// changes, and the input tensor is detached first (a graph it belongs to is left alone). The
/// function must treat the rows of its input independently (no batch statistics: modules run in
/// eval mode), since rows of different samples, noise draws and path points share a batch.
///
/// Bad input throws std::invalid_argument naming the function and the argument (the shapes, the
/// value). A score that does not depend on the input gives zero attributions, never NaN; IG then
/// reports its completeness error as undefined (std::nullopt), since F(x) − F(x′) is 0.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "nn/module.hpp"
#include "nn/options.hpp"

namespace tapegrad::nn {

/// A differentiable function of a batched input: x [B, ...] → an output whose first dimension is B.
using Forward = std::function<Tensor(const Tensor& x)>;

/// What is explained: one score per row of the function's output.
class Target {
 public:
  /// (output [B, ...], sample int64 [B]: the input sample each row belongs to) → scores [B].
  /// The rows of one call may be several samples' (SmoothGrad's noise draws, IG's path points).
  using Selector = std::function<Tensor(const Tensor& output, const Tensor& sample)>;

  /// output[r, c] for every row: the output must be [B, C] with 0 ≤ c < C.
  static Target class_index(int64_t c);
  /// output[r, labels[sample[r]]]: `labels` is int64 [N], one class per input sample.
  static Target class_indices(const Tensor& labels);
  /// The output itself, which must be [B] or [B, 1] (a per-sample loss, a regression value).
  static Target scalar_output();
  /// Any differentiable selection, e.g. a chosen token's log-probability:
  ///     Target::custom([&](const Tensor& logits, const Tensor& sample) { ... return scores; }, "token")
  static Target custom(Selector select, std::string description = "custom target");

  /// The scores [B] of `output` for rows of samples `sample` (of n_samples input samples). Throws
  /// std::invalid_argument starting with `who` for a class out of range, an output of the wrong
  /// rank, or a selector whose result is not [B] (or [B, 1]) floating.
  Tensor scores(const Tensor& output, const Tensor& sample, int64_t n_samples, const std::string& who) const;
  /// Checks what can be checked before any forward: labels' dtype, rank and length against n_samples.
  void validate(int64_t n_samples, const std::string& who) const;
  /// What the target selects, for reports and messages (e.g. "class 3", custom's `description`).
  const std::string& description() const { return description_; }

 private:
  enum class Kind { class_index, class_indices, scalar_output, custom };
  Kind kind_ = Kind::scalar_output;
  int64_t class_ = 0;
  Tensor labels_;
  Selector select_;
  std::string description_;
};

/// Options of saliency, gradient and gradient_x_input.
struct GradientOptions {
  /// Rows per forward/backward; 0: the whole batch at once.
  TAPEGRAD_LAYER_ARG(int64_t, batch_size, 0)
};

/// SmoothGrad's options. Noise σ = noise_level · (max(xᵢ) − min(xᵢ)) per sample i (the paper's
/// 10–20 % of the input range).
struct SmoothGradOptions {
  /// Noisy copies per sample (n in the paper); ≥ 1.
  TAPEGRAD_LAYER_ARG(int64_t, samples, 50)
  /// σ relative to each sample's value range; ≥ 0 (0: saliency averaged over identical copies).
  TAPEGRAD_LAYER_ARG(double, noise_level, 0.15)
  /// Average |∂y/∂x| (the smoothed saliency map, default) or the signed ∂y/∂x.
  TAPEGRAD_LAYER_ARG(bool, absolute, true)
  /// Rows (noisy copies) per forward/backward; 0: `samples` (one input sample's copies at a time).
  TAPEGRAD_LAYER_ARG(int64_t, batch_size, 0)
};

/// Integrated Gradients' options. The path integral is the midpoint rule over `steps` points
/// αₖ = (k + ½)/steps; the points are evaluated in batches, so `steps` points cost about one
/// forward + backward of a batch of `steps` rows.
struct IntegratedGradientsOptions {
  /// Riemann steps m ≥ 1 (the paper: 20–300; 64 keeps ReLU nets' completeness error near 1 %).
  TAPEGRAD_LAYER_ARG(int64_t, steps, 64)
  /// x′, of x's shape; undefined: zeros (a black image).
  TAPEGRAD_LAYER_ARG(Tensor, baseline, Tensor())
  /// Path points per forward/backward (memory: one batch of this many rows is alive at a time);
  /// 0: `steps` (one input sample's path per batch). Any positive value gives the same result up to
  /// rounding: batches may cut across samples.
  TAPEGRAD_LAYER_ARG(int64_t, batch_size, 0)
};

/// IG's completeness check for one sample: Σ attributions should equal F(x) − F(x′).
struct Completeness {
  double attribution_sum = 0;    ///< Σⱼ attributionⱼ
  double output_difference = 0;  ///< F(x) − F(x′)
  double absolute_error = 0;     ///< |attribution_sum − output_difference|
  /// absolute_error / |output_difference|; std::nullopt (undefined, not NaN) when F(x) = F(x′), as
  /// for a score that does not depend on the input (its attributions are then exactly 0).
  std::optional<double> relative_error;
};

/// Integrated Gradients' result.
struct IntegratedGradientsResult {
  Tensor attributions;                     ///< (x − x′) · mean of ∂y/∂x over the path; x's shape
  Tensor output;                           ///< F(x), one score per sample [N] (float64)
  Tensor baseline_output;                  ///< F(x′) [N] (float64)
  std::vector<Completeness> completeness;  ///< one per sample
  /// The largest defined relative error over the samples; std::nullopt when none is defined.
  std::optional<double> max_relative_error() const;
};

/// ∂y/∂x, signed, of x's shape (zeros where y does not depend on x).
Tensor gradient(const Forward& f, const Tensor& x, const Target& target, const GradientOptions& options = {});
/// Saliency |∂y/∂x|, of x's shape.
Tensor saliency(const Forward& f, const Tensor& x, const Target& target, const GradientOptions& options = {});
/// Gradient × input x · ∂y/∂x, of x's shape.
Tensor gradient_x_input(const Forward& f, const Tensor& x, const Target& target, const GradientOptions& options = {});
/// SmoothGrad: the mean over options.samples() draws of |∂y/∂x| (or ∂y/∂x) at x + noise, noise
/// drawn from `gen` (pass a seeded Generator for reproducible maps). Of x's shape.
Tensor smooth_grad(const Forward& f, const Tensor& x, const Target& target, const SmoothGradOptions& options = {},
                   Generator& gen = default_generator());
/// Integrated Gradients with its completeness report.
IntegratedGradientsResult integrated_gradients(const Forward& f, const Tensor& x, const Target& target,
                                               const IntegratedGradientsOptions& options = {});

/// The same for a module: run in eval mode (Dropout off, BatchNorm on running statistics), each
/// submodule's training flag restored afterwards, parameters and their grad() untouched.
///@{
Tensor gradient(UnaryModule& model, const Tensor& x, const Target& target, const GradientOptions& options = {});
Tensor saliency(UnaryModule& model, const Tensor& x, const Target& target, const GradientOptions& options = {});
Tensor gradient_x_input(UnaryModule& model, const Tensor& x, const Target& target, const GradientOptions& options = {});
Tensor smooth_grad(UnaryModule& model, const Tensor& x, const Target& target, const SmoothGradOptions& options = {},
                   Generator& gen = default_generator());
IntegratedGradientsResult integrated_gradients(UnaryModule& model, const Tensor& x, const Target& target,
                                               const IntegratedGradientsOptions& options = {});
///@}

}  // namespace tapegrad::nn
