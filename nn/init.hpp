#pragma once
/// \file init.hpp
/// Initializers, in place (the handle is not rebound, recording is off). Every random one draws
/// from a Generator — the calling thread's default (random.hpp) unless one is passed — so a run
/// with the same seed is reproducible. fan_in = size(1)·receptive field, fan_out = size(0)·receptive
/// field, where the receptive field is the product of the dimensions after the first two (1 for a
/// matrix).
#include <utility>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace tapegrad::nn::init {

/// Which fan the Kaiming initializers scale by: fan_in keeps the forward variance, fan_out the backward's.
enum class FanMode {
  fan_in,   ///< inputs per unit, fans(t).first
  fan_out,  ///< outputs per unit, fans(t).second
};
/// The activation that follows the layer, for calculate_gain.
enum class Nonlinearity {
  linear,     ///< no activation (or an identity, a conv without one): gain 1
  sigmoid,    ///< gain 1
  tanh,       ///< gain 5/3
  relu,       ///< gain √2
  leaky_relu  ///< gain √(2/(1 + a²)), a the negative slope (calculate_gain's `param`)
};

/// (fan_in, fan_out) of a tensor with at least 2 dimensions (1-D: both are its size).
std::pair<int64_t, int64_t> fans(const Tensor& t);
/// The recommended gain: 1 (linear, sigmoid), 5/3 (tanh), √2 (relu), √(2/(1 + a²)) (leaky_relu).
double calculate_gain(Nonlinearity nonlinearity, double param = 0.01);

/// U(low, high).
Tensor uniform_(Tensor t, double low = 0.0, double high = 1.0, Generator& gen = default_generator());
/// N(mean, std²).
Tensor normal_(Tensor t, double mean = 0.0, double std = 1.0, Generator& gen = default_generator());
///@{
/// Fills t with `value`, 0 or 1.
Tensor constant_(Tensor t, double value);
Tensor zeros_(Tensor t);
Tensor ones_(Tensor t);
///@}
/// Glorot/Xavier uniform (Keras's Dense default): U(−b, b), b = gain·√(6 / (fan_in + fan_out)).
Tensor xavier_uniform_(Tensor t, double gain = 1.0, Generator& gen = default_generator());
/// Glorot/Xavier normal: N(0, σ²), σ = gain·√(2 / (fan_in + fan_out)).
Tensor xavier_normal_(Tensor t, double gain = 1.0, Generator& gen = default_generator());
/// Kaiming/He uniform: U(−b, b), b = √3 · gain / √fan, gain = calculate_gain(nonlinearity, a).
/// PyTorch's Linear/Conv default is a = √5, leaky_relu, fan_in (b = 1/√fan_in).
Tensor kaiming_uniform_(Tensor t, double a = 0.0, FanMode mode = FanMode::fan_in,
                        Nonlinearity nonlinearity = Nonlinearity::leaky_relu, Generator& gen = default_generator());
/// Kaiming/He normal: N(0, σ²), σ = gain / √fan.
Tensor kaiming_normal_(Tensor t, double a = 0.0, FanMode mode = FanMode::fan_in,
                       Nonlinearity nonlinearity = Nonlinearity::leaky_relu, Generator& gen = default_generator());

}  // namespace tapegrad::nn::init
