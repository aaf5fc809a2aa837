// Batch and layer normalisation as composites of core ops (mean, var, sub, div, sqrt), so their
// gradients, including the coupling through the batch statistics, come from the core's.
#include <string>

#include "autograd/functions.hpp"
#include "autograd/node.hpp"
#include "nn/functional.hpp"

namespace tapegrad::nn::functional {
namespace {

void check_channel_tensor(const char* what, const Tensor& t, int64_t C, DType dtype) {
  if (!t.defined()) return;
  if (t.shape() != Shape{C})
    throw ShapeError(std::string("tapegrad::nn::batch_norm: ") + what + " has shape " + to_string(t.shape()) +
                     ", expected [" + std::to_string(C) + "]");
  if (t.dtype() != dtype)
    throw DTypeError(std::string("tapegrad::nn::batch_norm: ") + what + " is " + dtype_name(t.dtype()) +
                     ", the input is " + dtype_name(dtype));
}

/// r ← (1 − momentum)·r + momentum·scale·stat, in place (stat holds C values).
void update_running(const Tensor& r, const Tensor& stat, double momentum, double scale) {
  if (!r.defined()) return;
  auto run = [&](auto z) {
    using T = decltype(z);
    T* pr = r.mutable_data<T>();
    const T* ps = stat.data<T>();
    for (int64_t c = 0; c < r.numel(); ++c)
      pr[c] = static_cast<T>((1 - momentum) * pr[c] + momentum * scale * ps[c]);
  };
  if (r.dtype() == DType::f32) run(float{});
  else run(double{});
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  if (!x.defined()) throw std::invalid_argument("tapegrad::nn::batch_norm: input is undefined");
  if (x.dim() < 2) throw ShapeError("tapegrad::nn::batch_norm: expects an input [N, C, ...], got " + to_string(x.shape()));
  if (!is_floating(x.dtype())) throw DTypeError("tapegrad::nn::batch_norm: expected a floating input");
  const int64_t C = x.size(1);
  check_channel_tensor("running_mean", running_mean, C, x.dtype());
  check_channel_tensor("running_var", running_var, C, x.dtype());
  check_channel_tensor("weight", weight, C, x.dtype());
  check_channel_tensor("bias", bias, C, x.dtype());
  Axes axes{0};
  Shape param_shape(std::vector<int64_t>(static_cast<size_t>(x.dim()), 1));
  param_shape[1] = C;
  for (int64_t d = 2; d < x.dim(); ++d) axes.push_back(d);
  const int64_t per_channel = x.numel() / std::max<int64_t>(C, 1);

  Tensor mu, var_;
  const bool use_batch = training || !running_mean.defined() || !running_var.defined();
  if (use_batch) {
    if (per_channel <= 1 && training)
      throw ShapeError("tapegrad::nn::batch_norm: expected more than 1 value per channel when training, got input " +
                       to_string(x.shape()));
    mu = mean(x, axes, true);
    var_ = var(x, axes, 0, true);
    if (training) {
      NoGradGuard no_grad;
      update_running(running_mean, mu, momentum, 1.0);
      update_running(running_var, var_, momentum, static_cast<double>(per_channel) / static_cast<double>(per_channel - 1));
    }
  } else {
    mu = reshape(running_mean.detach(), param_shape);
    var_ = reshape(running_var.detach(), param_shape);
  }
  Tensor y = div(sub(x, mu), sqrt(add(var_, eps)));
  if (weight.defined()) y = mul(y, reshape(weight, param_shape));
  if (bias.defined()) y = add(y, reshape(bias, param_shape));
  return y;
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias, double eps) {
  if (!x.defined()) throw std::invalid_argument("tapegrad::nn::layer_norm: input is undefined");
  const size_t k = normalized_shape.size();
  bool ok = k > 0 && x.shape().size() >= k;
  for (size_t i = 0; ok && i < k; ++i) ok = x.shape()[x.shape().size() - k + i] == normalized_shape[i];
  if (!ok)
    throw ShapeError("tapegrad::nn::layer_norm: input " + to_string(x.shape()) + " does not end with normalized_shape " +
                     to_string(normalized_shape));
  for (const Tensor* t : {&weight, &bias})
    if (t->defined() && t->shape() != normalized_shape)
      throw ShapeError("tapegrad::nn::layer_norm: weight/bias of shape " + to_string(t->shape()) + ", expected " +
                       to_string(normalized_shape));
  Axes axes;
  for (size_t i = 0; i < k; ++i) axes.push_back(-static_cast<int64_t>(i) - 1);
  Tensor y = div(sub(x, mean(x, axes, true)), sqrt(add(var(x, axes, 0, true), eps)));
  if (weight.defined()) y = mul(y, weight);
  if (bias.defined()) y = add(y, bias);
  return y;
}

}  // namespace tapegrad::nn::functional
