#pragma once
/// \file norm.hpp
/// Normalisation layers. BatchNorm keeps running statistics as buffers (running_mean,
/// running_var, num_batches_tracked — PyTorch's names, so state dicts line up): training mode
/// normalises with the batch statistics and updates them; eval mode uses them.
#include <optional>
#include <string>

#include "nn/functional.hpp"
#include "nn/module.hpp"

namespace tapegrad::nn {

/// y = (x − μ) / √(σ² + ε) · γ + β per channel (dimension 1); see functional::batch_norm.
class BatchNorm : public Module {
 public:
  /// `input_dims`: the accepted input ranks (BatchNorm1d: 2 or 3, BatchNorm2d: 4).
  BatchNorm(const char* name, std::vector<int64_t> input_dims, int64_t num_features, double eps, double momentum,
            bool affine, bool track_running_stats);
  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return std::string(name_) + "(" + std::to_string(num_features_) + ")"; }
  Tensor weight, bias;                                          ///< γ (ones), β (zeros); undefined unless affine
  Tensor running_mean, running_var, num_batches_tracked;       ///< undefined unless track_running_stats

 private:
  const char* name_;
  std::vector<int64_t> input_dims_;
  int64_t num_features_;
  double eps_, momentum_;
};

/// Batch normalisation of [N, C] or [N, C, L] inputs.
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm("BatchNorm1d", {2, 3}, num_features, eps, momentum, affine, track_running_stats) {}
};

/// Batch normalisation of [N, C, H, W] inputs.
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm("BatchNorm2d", {4}, num_features, eps, momentum, affine, track_running_stats) {}
};

/// Normalises over the trailing `normalized_shape` dimensions; γ (ones) and β (zeros) of that shape.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) override {
    return functional::layer_norm(x, normalized_shape_, weight, bias, eps_);
  }
  std::string repr() const override { return "LayerNorm" + to_string(normalized_shape_); }
  Tensor weight, bias;

 private:
  Shape normalized_shape_;
  double eps_;
};

/// RMS normalisation over the trailing `normalized_shape` dimensions (PyTorch 2.4's nn.RMSNorm):
/// y = x / √(mean(x²) + ε) · γ, γ a parameter named `weight` of normalized_shape initialised to ones
/// (none without elementwise_affine). eps = nullopt uses the input dtype's machine epsilon; see
/// functional::rms_norm.
class RMSNorm : public Module {
 public:
  explicit RMSNorm(Shape normalized_shape, std::optional<double> eps = std::nullopt, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) override { return functional::rms_norm(x, normalized_shape_, weight, eps_); }
  std::string repr() const override { return "RMSNorm" + to_string(normalized_shape_); }
  Tensor weight;  ///< γ, or undefined without elementwise_affine

 private:
  Shape normalized_shape_;
  std::optional<double> eps_;
};

}  // namespace tapegrad::nn
