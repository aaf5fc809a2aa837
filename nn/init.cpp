// Initializers: raw loops over the tensor's storage, drawing from one Generator.
#include "nn/init.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace tapegrad::nn::init {
namespace {

/// Sets every element to f() (converted to the tensor's dtype).
template <class F>
Tensor fill(const char* op, Tensor t, F&& f) {
  if (!t.defined()) throw std::invalid_argument(std::string("tapegrad::nn::init::") + op + ": tensor is undefined");
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::f32: { float* p = t.mutable_data<float>(); for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(f()); break; }
    case DType::f64: { double* p = t.mutable_data<double>(); for (int64_t i = 0; i < n; ++i) p[i] = f(); break; }
    default: throw DTypeError(std::string("tapegrad::nn::init::") + op + ": expected a floating tensor, got " + dtype_name(t.dtype()));
  }
  return t;
}

double fan(const Tensor& t, FanMode mode) {
  auto [in, out] = fans(t);
  int64_t f = mode == FanMode::fan_in ? in : out;
  if (f <= 0) throw ShapeError("tapegrad::nn::init: fan is zero for a tensor of shape " + to_string(t.shape()));
  return static_cast<double>(f);
}

}  // namespace

std::pair<int64_t, int64_t> fans(const Tensor& t) {
  if (t.dim() < 1) throw ShapeError("tapegrad::nn::init::fans: needs at least 1 dimension, got a 0-d tensor");
  if (t.dim() == 1) return {t.size(0), t.size(0)};
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

double calculate_gain(Nonlinearity nl, double param) {
  switch (nl) {
    case Nonlinearity::linear:
    case Nonlinearity::sigmoid: return 1.0;
    case Nonlinearity::tanh: return 5.0 / 3.0;
    case Nonlinearity::relu: return std::sqrt(2.0);
    case Nonlinearity::leaky_relu: return std::sqrt(2.0 / (1.0 + param * param));
  }
  return 1.0;
}

Tensor uniform_(Tensor t, double low, double high, Generator& gen) {
  return fill("uniform_", std::move(t), [&] { return low + (high - low) * gen.uniform(); });
}
Tensor normal_(Tensor t, double mean, double std, Generator& gen) {
  return fill("normal_", std::move(t), [&] { return mean + std * gen.normal(); });
}
Tensor constant_(Tensor t, double value) { return fill("constant_", std::move(t), [value] { return value; }); }
Tensor zeros_(Tensor t) { return constant_(std::move(t), 0.0); }
Tensor ones_(Tensor t) { return constant_(std::move(t), 1.0); }

Tensor xavier_uniform_(Tensor t, double gain, Generator& gen) {
  double b = gain * std::sqrt(6.0 / (fan(t, FanMode::fan_in) + fan(t, FanMode::fan_out)));
  return uniform_(std::move(t), -b, b, gen);
}
Tensor xavier_normal_(Tensor t, double gain, Generator& gen) {
  double s = gain * std::sqrt(2.0 / (fan(t, FanMode::fan_in) + fan(t, FanMode::fan_out)));
  return normal_(std::move(t), 0.0, s, gen);
}
Tensor kaiming_uniform_(Tensor t, double a, FanMode mode, Nonlinearity nl, Generator& gen) {
  double b = std::sqrt(3.0) * calculate_gain(nl, a) / std::sqrt(fan(t, mode));
  return uniform_(std::move(t), -b, b, gen);
}
Tensor kaiming_normal_(Tensor t, double a, FanMode mode, Nonlinearity nl, Generator& gen) {
  return normal_(std::move(t), 0.0, calculate_gain(nl, a) / std::sqrt(fan(t, mode)), gen);
}

}  // namespace tapegrad::nn::init
