#pragma once
/// \file norm.hpp
/// Normalisation layers. BatchNorm keeps running statistics as buffers (running_mean,
/// running_var, num_batches_tracked — PyTorch's names, so state dicts line up): training mode
/// normalises with the batch statistics and updates them; eval mode uses them.
#include <optional>
#include <string>

#include "nn/functional.hpp"
#include "nn/module.hpp"
#include "nn/options.hpp"

namespace tapegrad::nn {

/// BatchNorm1d's and BatchNorm2d's options: the channel count, then ε (1e-5), the running
/// statistics' momentum (0.1), whether there are γ and β (affine, true) and whether running
/// statistics are kept (track_running_stats, true).
///
///     nn::BatchNorm2d bn(nn::BatchNormOptions(64).momentum(0.01).affine(false));
struct BatchNormOptions {
  /// Implicit from the channel count, so `BatchNorm1d(8)` works.
  BatchNormOptions(int64_t num_features) : num_features_(num_features) {}  // NOLINT: implicit, BatchNorm1d(8)
  TAPEGRAD_LAYER_ARG(int64_t, num_features, 0)       ///< C, the size of dimension 1 of the input
  TAPEGRAD_LAYER_ARG(double, eps, 1e-5)              ///< ε added to the variance
  TAPEGRAD_LAYER_ARG(double, momentum, 0.1)          ///< running ← (1 − momentum)·running + momentum·batch
  TAPEGRAD_LAYER_ARG(bool, affine, true)             ///< learnable γ (weight, ones) and β (bias, zeros)
  TAPEGRAD_LAYER_ARG(bool, track_running_stats, true)  ///< keep running mean/var for eval mode (else batch stats)
};

/// y = (x − μ) / √(σ² + ε) · γ + β per channel (dimension 1); see functional::batch_norm.
class BatchNorm : public UnaryModule {
 public:
  /// `name` for errors and repr(); `input_dims`: the accepted input ranks (BatchNorm1d: 2 or 3,
  /// BatchNorm2d: 4). Throws std::invalid_argument unless num_features is positive.
  BatchNorm(const char* name, std::vector<int64_t> input_dims, const BatchNormOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return std::string(name_) + "(" + std::to_string(num_features_) + ")"; }
  ///@{
  /// γ (ones), β (zeros); undefined unless affine.
  Tensor weight, bias;
  ///@}
  ///@{
  /// Buffers (in the state dict, not parameters): the running mean and variance per channel and
  /// the batch count; undefined unless track_running_stats.
  Tensor running_mean, running_var, num_batches_tracked;
  ///@}

 private:
  const char* name_;
  std::vector<int64_t> input_dims_;
  int64_t num_features_;
  double eps_, momentum_;
};

/// Batch normalisation of [N, C] or [N, C, L] inputs.
class BatchNorm1d : public BatchNorm {
 public:
  /// BatchNorm1d(8), or BatchNorm1d(BatchNormOptions(8).eps(1e-3)).
  explicit BatchNorm1d(const BatchNormOptions& options) : BatchNorm("BatchNorm1d", {2, 3}, options) {}
};

/// Batch normalisation of [N, C, H, W] inputs.
class BatchNorm2d : public BatchNorm {
 public:
  /// BatchNorm2d(64), or BatchNorm2d(BatchNormOptions(64).momentum(0.01)).
  explicit BatchNorm2d(const BatchNormOptions& options) : BatchNorm("BatchNorm2d", {4}, options) {}
};

/// LayerNorm's options: the normalised trailing shape, then ε (1e-5), whether there are γ and
/// β (elementwise_affine, true), and whether β exists when they do (bias, true; PyTorch 2.1's
/// `bias=False`, nanoGPT's LayerNorm).
///
///     nn::LayerNorm ln(nn::LayerNormOptions({128}).eps(1e-6).elementwise_affine(false));
struct LayerNormOptions {
  /// Normalizes over trailing dimensions of this shape.
  explicit LayerNormOptions(Shape normalized_shape) : normalized_shape_(std::move(normalized_shape)) {}
  TAPEGRAD_LAYER_ARG(Shape, normalized_shape, {})     ///< the trailing dimensions normalised over
  TAPEGRAD_LAYER_ARG(double, eps, 1e-5)               ///< ε added to the variance
  TAPEGRAD_LAYER_ARG(bool, elementwise_affine, true)  ///< learnable γ (weight) and β (bias)
  TAPEGRAD_LAYER_ARG(bool, bias, true)                ///< β exists (with elementwise_affine)
};

/// Normalises over the trailing `normalized_shape` dimensions; γ (ones) and β (zeros) of that shape.
/// Throws std::invalid_argument for an empty shape or a size that is not positive.
class LayerNorm : public UnaryModule {
 public:
  /// LayerNorm({128}): ε 1e-5, with γ and β.
  explicit LayerNorm(Shape normalized_shape) : LayerNorm(LayerNormOptions(std::move(normalized_shape))) {}
  /// LayerNorm(LayerNormOptions({128}).eps(1e-6)).
  explicit LayerNorm(const LayerNormOptions& options);
  Tensor forward(const Tensor& x) override {
    return functional::layer_norm(x, normalized_shape_, weight, bias, eps_);
  }
  std::string repr() const override {
    return "LayerNorm" + to_string(normalized_shape_) + (weight.defined() && !bias.defined() ? " (bias=false)" : "");
  }
  ///@{
  /// γ and β; undefined without elementwise_affine (β also without bias).
  Tensor weight, bias;
  ///@}

 private:
  Shape normalized_shape_;
  double eps_;
};

/// RMS normalisation over the trailing `normalized_shape` dimensions (PyTorch 2.4's nn.RMSNorm):
/// y = x / √(mean(x²) + ε) · γ, γ a parameter named `weight` of normalized_shape initialised to ones
/// (none without elementwise_affine). eps = nullopt uses the input dtype's machine epsilon; see
/// functional::rms_norm.
///
///     nn::RMSNorm norm(nn::RMSNormOptions({128}).eps(1e-6).elementwise_affine(false));
struct RMSNormOptions {
  /// Normalizes over trailing dimensions of this shape.
  explicit RMSNormOptions(Shape normalized_shape) : normalized_shape_(std::move(normalized_shape)) {}
  TAPEGRAD_LAYER_ARG(Shape, normalized_shape, {})               ///< the trailing dimensions normalised over
  TAPEGRAD_LAYER_ARG(std::optional<double>, eps, std::nullopt)  ///< ε; nullopt: the dtype's machine epsilon
  TAPEGRAD_LAYER_ARG(bool, elementwise_affine, true)            ///< a learnable γ (weight, ones)
};
/// The RMSNorm layer RMSNormOptions describes (see there for the formula).
class RMSNorm : public UnaryModule {
 public:
  /// RMSNorm({128}): ε the dtype's epsilon, with γ.
  explicit RMSNorm(Shape normalized_shape) : RMSNorm(RMSNormOptions(std::move(normalized_shape))) {}
  /// RMSNorm(RMSNormOptions({128}).eps(1e-6)). Throws std::invalid_argument for an empty or
  /// non-positive shape or a negative ε.
  explicit RMSNorm(const RMSNormOptions& options);
  Tensor forward(const Tensor& x) override { return functional::rms_norm(x, normalized_shape_, weight, eps_); }
  std::string repr() const override { return "RMSNorm" + to_string(normalized_shape_); }
  Tensor weight;  ///< γ, or undefined without elementwise_affine

 private:
  Shape normalized_shape_;
  std::optional<double> eps_;
};

}  // namespace tapegrad::nn
