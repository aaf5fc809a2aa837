#pragma once
/// \file conv.hpp
/// Convolution and pooling layers over NCHW images.
#include <string>

#include "autograd/random.hpp"
#include "nn/functional.hpp"
#include "nn/module.hpp"

namespace tapegrad::nn {

/// 2-D convolution (cross-correlation), W [out, in, k_h, k_w], b [out]; see functional::conv2d.
/// PyTorch's initialisation: W, b ~ U(−1/√fan_in, 1/√fan_in), fan_in = in·k_h·k_w.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, functional::Size2 kernel, functional::Size2 stride = 1,
         functional::Size2 padding = 0, functional::Size2 dilation = 1, bool bias = true,
         Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override {
    return functional::conv2d(x, weight, bias, stride_, padding_, dilation_);
  }
  std::string repr() const override;
  Tensor weight, bias;

 private:
  functional::Size2 stride_, padding_, dilation_;
};

/// Shared hyper-parameters of the pooling layers (stride 0 means: equal to the kernel).
class Pool2d : public Module {
 public:
  explicit Pool2d(functional::Size2 kernel, functional::Size2 stride = 0, functional::Size2 padding = 0)
      : kernel_(kernel), stride_(stride), padding_(padding) {}

 protected:
  functional::Size2 kernel_, stride_, padding_;
};

/// Max over k×k windows; the gradient goes to each window's first maximum.
class MaxPool2d : public Pool2d {
 public:
  using Pool2d::Pool2d;
  Tensor forward(const Tensor& x) override { return functional::max_pool2d(x, kernel_, stride_, padding_); }
  std::string repr() const override { return "MaxPool2d"; }
};

/// Mean over k×k windows (padding counts as zeros).
class AvgPool2d : public Pool2d {
 public:
  using Pool2d::Pool2d;
  Tensor forward(const Tensor& x) override { return functional::avg_pool2d(x, kernel_, stride_, padding_); }
  std::string repr() const override { return "AvgPool2d"; }
};

}  // namespace tapegrad::nn
