// Batch and layer normalisation as composites of core ops (mean, var, sub, div, sqrt), so their
// gradients, including the coupling through the batch statistics, come from the core's. RMS
// normalisation is one fused op (forward and first-order backward one pass each over the rows).
#include <cmath>
#include <limits>
#include <string>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "nn/functional.hpp"
#include "nn/norm.hpp"

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

/// Σ a[k]·b[k] over n values, in xsimd batches (a plain loop's sum is one serial chain of adds).
template <class T>
T dot_row(const T* a, const T* b, int64_t n) {
  using B = xsimd::batch<T>;
  constexpr int64_t W = static_cast<int64_t>(B::size);
  B acc0(T(0)), acc1(T(0));
  int64_t k = 0;
  for (; k + 2 * W <= n; k += 2 * W) {
    acc0 = xsimd::fma(B::load_unaligned(a + k), B::load_unaligned(b + k), acc0);
    acc1 = xsimd::fma(B::load_unaligned(a + k + W), B::load_unaligned(b + k + W), acc1);
  }
  T total = xsimd::hadd(acc0 + acc1);
  for (; k < n; ++k) total += a[k] * b[k];
  return total;
}

/// Checks that x ends with `normalized_shape` and that the affine tensors have that shape; returns
/// the trailing axes (−1, −2, ...).
Axes check_normalized_shape(const char* op, const Tensor& x, const Shape& normalized_shape,
                            std::initializer_list<const Tensor*> affine) {
  const std::string name = std::string("tapegrad::nn::") + op;
  if (!x.defined()) throw std::invalid_argument(name + ": input is undefined");
  const size_t k = normalized_shape.size();
  bool ok = k > 0 && x.shape().size() >= k;
  for (size_t i = 0; ok && i < k; ++i) ok = x.shape()[x.shape().size() - k + i] == normalized_shape[i];
  if (!ok)
    throw ShapeError(name + ": input " + to_string(x.shape()) + " does not end with normalized_shape " +
                     to_string(normalized_shape));
  for (const Tensor* t : affine)
    if (t->defined() && t->shape() != normalized_shape)
      throw ShapeError(name + ": weight/bias of shape " + to_string(t->shape()) + ", expected " +
                       to_string(normalized_shape));
  Axes axes;
  for (size_t i = 0; i < k; ++i) axes.push_back(-static_cast<int64_t>(i) - 1);
  return axes;
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
  const Axes axes = check_normalized_shape("layer_norm", x, normalized_shape, {&weight, &bias});
  Tensor y = div(sub(x, mean(x, axes, true)), sqrt(add(var(x, axes, 0, true), eps)));
  if (weight.defined()) y = mul(y, weight);
  if (bias.defined()) y = add(y, bias);
  return y;
}

Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, std::optional<double> eps_opt) {
  const Axes axes = check_normalized_shape("rms_norm", x, normalized_shape, {&weight});
  if (!is_floating(x.dtype()))
    throw DTypeError(std::string("tapegrad::nn::rms_norm: expected a floating input, got ") + dtype_name(x.dtype()));
  if (weight.defined() && weight.dtype() != x.dtype())
    throw DTypeError(std::string("tapegrad::nn::rms_norm: weight is ") + dtype_name(weight.dtype()) + ", the input is " +
                     dtype_name(x.dtype()));
  const double eps = eps_opt ? *eps_opt
                             : (x.dtype() == DType::f32 ? double(std::numeric_limits<float>::epsilon())
                                                        : std::numeric_limits<double>::epsilon());
  if (!(eps >= 0)) throw std::invalid_argument("tapegrad::nn::rms_norm: eps must be >= 0, got " + std::to_string(eps));
  int64_t D = 1;
  for (int64_t s : normalized_shape) D *= s;
  const int64_t rows = D == 0 ? 0 : x.numel() / D;
  Tensor result = Tensor::empty(x.shape(), x.dtype());
  Tensor rstd = Tensor::empty({rows}, x.dtype());  // r = 1/√(mean(x²) + ε) per row
  auto forward = [&](auto z) {
    using T = decltype(z);
    const T* px = x.data<T>();
    const T* pw = weight.defined() ? weight.data<T>() : nullptr;
    T* py = result.mutable_data<T>();
    T* pr = rstd.mutable_data<T>();
    for (int64_t n = 0; n < rows; ++n, px += D, py += D) {
      const T r = static_cast<T>(1 / std::sqrt(double(dot_row(px, px, D)) / double(D) + eps));
      pr[n] = r;
      if (pw) for (int64_t c = 0; c < D; ++c) py[c] = px[c] * r * pw[c];
      else for (int64_t c = 0; c < D; ++c) py[c] = px[c] * r;
    }
  };
  if (x.dtype() == DType::f32) forward(float{});
  else forward(double{});
  return record("rms_norm", result, {x, weight}, save_for_backward(x, weight, rstd),
                [axes, eps, D, rows](const BackwardContext& ctx) -> Grads {
    const Tensor &x = ctx.saved(0), &w = ctx.saved(1), &rstd = ctx.saved(2);
    if (grad_enabled()) {  // create_graph: the same formula in differentiable ops, r recomputed from x
      Tensor r = pow(add(mean(mul(x, x), axes, true), eps), -0.5);
      Tensor xhat = mul(x, r);
      Tensor gw = w.defined() ? mul(ctx.grad, w) : ctx.grad;
      return {ctx.needs(0) ? mul(r, sub(gw, mul(xhat, mean(mul(gw, xhat), axes, true)))) : Tensor(),
              ctx.needs(1) ? sum_to(mul(ctx.grad, xhat), w.shape()) : Tensor()};
    }
    // first order, one pass per row: dx = r·gγ − r³·x·Σ(gγ·x)/D,  dγ += g·x·r
    Tensor dx = ctx.needs(0) ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
    Tensor dw = ctx.needs(1) ? zeros(w.shape(), w.dtype()) : Tensor();
    auto backward = [&](auto z) {
      using T = decltype(z);
      const T *px = x.data<T>(), *pg = ctx.grad.data<T>(), *pr = rstd.data<T>();
      const T* pw = w.defined() ? w.data<T>() : nullptr;
      T* pdx = dx.defined() ? dx.mutable_data<T>() : nullptr;
      T* pdw = dw.defined() ? dw.mutable_data<T>() : nullptr;
      for (int64_t n = 0; n < rows; ++n, px += D, pg += D) {
        const T r = pr[n];
        if (pdw)
          for (int64_t c = 0; c < D; ++c) pdw[c] += pg[c] * px[c] * r;
        if (!pdx) continue;
        const T* pgw = pg;  // g·γ, written into dx first
        if (pw) {
          for (int64_t c = 0; c < D; ++c) pdx[c] = pg[c] * pw[c];
          pgw = pdx;
        }
        const T k = r * r * r * dot_row(pgw, px, D) / static_cast<T>(D);
        for (int64_t c = 0; c < D; ++c) pdx[c] = r * pgw[c] - k * px[c];
        pdx += D;
      }
    };
    if (x.dtype() == DType::f32) backward(float{});
    else backward(double{});
    return {dx, dw};
  });
}

}  // namespace tapegrad::nn::functional

namespace tapegrad::nn {

RMSNorm::RMSNorm(const RMSNormOptions& options)
    : normalized_shape_(options.normalized_shape()), eps_(options.eps()) {
  const auto& eps = eps_;
  if (normalized_shape_.empty()) throw std::invalid_argument("tapegrad::nn::RMSNorm: normalized_shape is empty");
  for (int64_t s : normalized_shape_)
    if (s <= 0)
      throw std::invalid_argument("tapegrad::nn::RMSNorm: normalized_shape must be positive, got " +
                                  to_string(normalized_shape_));
  if (eps && !(*eps >= 0)) throw std::invalid_argument("tapegrad::nn::RMSNorm: eps must be >= 0, got " + std::to_string(*eps));
  if (options.elementwise_affine()) weight = register_parameter("weight", ones(normalized_shape_));
}

}  // namespace tapegrad::nn
