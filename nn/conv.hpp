#pragma once
/// \file conv.hpp
/// Convolution and pooling layers over NCHW images, with libtorch-style options:
///
///     nn::Conv2d conv(nn::Conv2dOptions(1, 32, 3).padding(1));   // 3×3, same size out
///     nn::MaxPool2d pool(nn::MaxPool2dOptions(3).stride(2));
#include <string>

#include "autograd/random.hpp"
#include "nn/functional.hpp"
#include "nn/module.hpp"
#include "nn/options.hpp"

namespace tapegrad::nn {

/// Conv2d's options: channels and kernel, then stride (1), padding (0), dilation (1) and whether
/// there is a bias (true). A Size2 is one size for both dimensions or {h, w}.
struct Conv2dOptions {
  /// The required arguments; the rest keep their defaults until set.
  Conv2dOptions(int64_t in_channels, int64_t out_channels, functional::Size2 kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TAPEGRAD_LAYER_ARG(int64_t, in_channels, 0)            ///< C_in, dimension 1 of the input [N, C_in, H, W]
  TAPEGRAD_LAYER_ARG(int64_t, out_channels, 0)           ///< C_out, dimension 1 of the output
  TAPEGRAD_LAYER_ARG(functional::Size2, kernel_size, 1)  ///< {k_h, k_w}
  TAPEGRAD_LAYER_ARG(functional::Size2, stride, 1)       ///< step between windows, > 0
  TAPEGRAD_LAYER_ARG(functional::Size2, padding, 0)      ///< zeros added on each side, >= 0
  TAPEGRAD_LAYER_ARG(functional::Size2, dilation, 1)     ///< spacing between kernel taps, > 0
  TAPEGRAD_LAYER_ARG(bool, bias, true)                   ///< a learnable bias [C_out]
};

/// 2-D convolution (cross-correlation), W [out, in, k_h, k_w], b [out]; see functional::conv2d.
/// PyTorch's initialisation: W, b ~ U(−1/√fan_in, 1/√fan_in), fan_in = in·k_h·k_w, drawn from
/// `gen`. Throws std::invalid_argument naming the layer and the value unless channels and kernel
/// are positive, stride and dilation positive and padding non-negative.
class Conv2d : public UnaryModule {
 public:
  /// Conv2d(Conv2dOptions(in_channels, out_channels, kernel_size)): stride 1, no padding, a bias.
  Conv2d(int64_t in_channels, int64_t out_channels, functional::Size2 kernel_size,
         Generator& gen = default_generator());
  /// The layer Conv2dOptions describes, drawn from `gen`.
  explicit Conv2d(const Conv2dOptions& options, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override {
    return functional::conv2d(x, weight, bias, options.stride(), options.padding(), options.dilation());
  }
  std::string repr() const override;
  Tensor weight;  ///< [out, in, k_h, k_w]
  Tensor bias;    ///< [out]; undefined with bias(false)
  const Conv2dOptions options;  ///< what it was built with
};

/// The pooling layers' options: the window, its stride (0, the default, means equal to the
/// window) and the padding (0).
struct Pool2dOptions {
  /// A window of kernel_size; stride and padding keep their defaults until set.
  explicit Pool2dOptions(functional::Size2 kernel_size) : kernel_size_(kernel_size) {}
  TAPEGRAD_LAYER_ARG(functional::Size2, kernel_size, 1)  ///< the window {k_h, k_w}
  TAPEGRAD_LAYER_ARG(functional::Size2, stride, 0)       ///< step between windows; 0: kernel_size
  TAPEGRAD_LAYER_ARG(functional::Size2, padding, 0)      ///< added on each side (−∞ for max, 0 for avg)
};
/// MaxPool2d's options (see Pool2dOptions).
using MaxPool2dOptions = Pool2dOptions;
/// AvgPool2d's options (see Pool2dOptions).
using AvgPool2dOptions = Pool2dOptions;

/// Max over k×k windows; the gradient goes to each window's first maximum.
class MaxPool2d : public UnaryModule {
 public:
  /// A window of kernel_size, stride equal to it, no padding.
  explicit MaxPool2d(functional::Size2 kernel_size) : options(kernel_size) {}
  /// Window, stride and padding from `options`.
  explicit MaxPool2d(const MaxPool2dOptions& options) : options(options) {}
  Tensor forward(const Tensor& x) override {
    return functional::max_pool2d(x, options.kernel_size(), options.stride(), options.padding());
  }
  std::string repr() const override { return "MaxPool2d"; }
  const MaxPool2dOptions options;  ///< window, stride, padding
};

/// Mean over k×k windows (padding counts as zeros).
class AvgPool2d : public UnaryModule {
 public:
  /// A window of kernel_size, stride equal to it, no padding.
  explicit AvgPool2d(functional::Size2 kernel_size) : options(kernel_size) {}
  /// Window, stride and padding from `options`.
  explicit AvgPool2d(const AvgPool2dOptions& options) : options(options) {}
  Tensor forward(const Tensor& x) override {
    return functional::avg_pool2d(x, options.kernel_size(), options.stride(), options.padding());
  }
  std::string repr() const override { return "AvgPool2d"; }
  const AvgPool2dOptions options;  ///< window, stride, padding
};

}  // namespace tapegrad::nn
