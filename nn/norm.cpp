// Batch normalisation as a composite of core ops (mean, var, sub, div, sqrt), so its gradients,
// including the coupling through the batch statistics, come from the core's. Layer and RMS
// normalisation are one fused op each over rows of the trailing dims, sharing the row kernels
// (RowNorm): two vectorised passes for the statistics, one for y; a fused first-order backward.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "autograd/parallel.hpp"
#include "autograd/simd_kernels.hpp"
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

/// The row norms' dtype rule (layer_norm, rms_norm; as linear, conv2d and PyTorch): a floating
/// input, and parameters of its dtype (no promotion to theirs).
void check_row_norm_dtypes(const char* op, const Tensor& x,
                           std::initializer_list<std::pair<const char*, const Tensor*>> params) {
  if (!is_floating(x.dtype()))
    throw DTypeError(std::string("tapegrad::nn::") + op + ": expected a floating input, got " + dtype_name(x.dtype()) +
                     " " + to_string(x.shape()));
  for (auto [what, t] : params)
    if (t->defined() && t->dtype() != x.dtype())
      throw DTypeError(std::string("tapegrad::nn::") + op + ": " + what + " is " + dtype_name(t->dtype()) +
                       ", the input is " + dtype_name(x.dtype()));
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

/// The fewest rows per chunk of the norms' backward (more for narrow rows, so that a chunk is worth a
/// hand-off): its dγ / dβ partial sums are per chunk, fixed by the row width and never by the
/// thread count.
constexpr int64_t kNormChunkRows = 32;

/// Rows of D = Π normalized_shape values normalised together. layer_norm (centered: μ subtracted,
/// a bias) and rms_norm (μ = 0, no bias) share these kernels. Per row r = 1/√(mean((x − μ)²) + ε),
/// x̂ = (x − μ)·r, and
///     forward   y = x̂·γ + β
///     backward  dx = r·(g·γ − mean(g·γ) − x̂·mean(g·γ·x̂)),  dγ = Σ_rows g·x̂,  dβ = Σ_rows g
/// (mean(g·γ) and β only when centered). γ, β may be undefined.
template <bool centered>
struct RowNorm {
  Shape normalized_shape;
  int64_t D = 1, rows = 0;

  RowNorm(const Tensor& x, const Shape& normalized_shape_) : normalized_shape(normalized_shape_) {
    for (int64_t s : normalized_shape) D *= s;
    rows = D == 0 ? 0 : x.numel() / D;
  }

  /// y, writing μ (when centered) and r per row into mu and rstd ([rows] each).
  Tensor forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& mu, const Tensor& rstd,
                 double eps) const {
    Tensor result = Tensor::empty(x.shape(), x.dtype());
    if (x.dtype() == DType::f32) forward_rows<float>(x, w, b, mu, rstd, eps, result);
    else forward_rows<double>(x, w, b, mu, rstd, eps, result);
    return result;
  }

  /// {dx, dγ} and, when centered, dβ: each only where ctx.needs it.
  Grads backward(const BackwardContext& ctx, const Tensor& x, const Tensor& w, const Tensor& mu,
                 const Tensor& rstd) const {
    Tensor dx = ctx.needs(0) ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
    Tensor dw = ctx.needs(1) ? Tensor::empty(normalized_shape, x.dtype()) : Tensor();  // backward_rows writes them
    Tensor db = centered && ctx.needs(2) ? Tensor::empty(normalized_shape, x.dtype()) : Tensor();
    if (x.dtype() == DType::f32) backward_rows<float>(ctx.grad, x, w, mu, rstd, dx, dw, db);
    else backward_rows<double>(ctx.grad, x, w, mu, rstd, dx, dw, db);
    if constexpr (centered) return {dx, dw, db};
    else return {dx, dw};
  }

  /// The same gradients in differentiable ops (create_graph), μ and r recomputed from x.
  Grads composite_backward(const BackwardContext& ctx, const Axes& axes, const Tensor& x, const Tensor& w,
                           double eps) const {
    Tensor xc = centered ? sub(x, mean(x, axes, true)) : x;
    Tensor r = pow(add(mean(mul(xc, xc), axes, true), eps), -0.5);
    Tensor xhat = mul(xc, r);
    Tensor gw = w.defined() ? mul(ctx.grad, w) : ctx.grad;
    Tensor dx, dw, db;
    if (ctx.needs(0)) {
      Tensor inner = sub(gw, mul(xhat, mean(mul(gw, xhat), axes, true)));
      if (centered) inner = sub(inner, mean(gw, axes, true));
      dx = mul(r, inner);
    }
    if (ctx.needs(1)) dw = sum_to(mul(ctx.grad, xhat), normalized_shape);
    if constexpr (centered) {
      if (ctx.needs(2)) db = sum_to(ctx.grad, normalized_shape);
      return {dx, dw, db};
    } else {
      return {dx, dw};
    }
  }

 private:
  template <class T>
  void forward_rows(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& mu, const Tensor& rstd,
                    double eps, const Tensor& result) const {
    const T* px = x.data<T>();
    const T* pw = w.defined() ? w.data<T>() : nullptr;
    const T* pb = b.defined() ? b.data<T>() : nullptr;
    T* py = result.mutable_data<T>();
    T* pm = centered ? mu.mutable_data<T>() : nullptr;
    T* pr = rstd.mutable_data<T>();
    simd::with_kernels<T>([&](auto kernel) {  // one ISA dispatch for all the rows
      // rows in parallel: each row's statistics and output are its own
      parallel::parallel_for(0, rows, parallel::rows_grain(3 * D), [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n) {
          const T* x = px + n * D;
          T* y = py + n * D;
          const auto [m, sq] = kernel.row_moments(x, D, centered);
          const T r = static_cast<T>(1 / std::sqrt(double(sq) / double(D) + eps));
          if (pm) pm[n] = m;
          pr[n] = r;
          if (pw && pb) for (int64_t c = 0; c < D; ++c) y[c] = (x[c] - m) * r * pw[c] + pb[c];
          else if (pw) for (int64_t c = 0; c < D; ++c) y[c] = (x[c] - m) * r * pw[c];
          else if (pb) for (int64_t c = 0; c < D; ++c) y[c] = (x[c] - m) * r + pb[c];
          else for (int64_t c = 0; c < D; ++c) y[c] = (x[c] - m) * r;
        }
      });
    });
  }

  template <class T>
  void backward_rows(const Tensor& grad, const Tensor& x, const Tensor& w, const Tensor& mu, const Tensor& rstd,
                     const Tensor& dx, const Tensor& dw, const Tensor& db) const {
    const T *px = x.data<T>(), *pg = grad.data<T>(), *pr = rstd.data<T>();
    const T* pm = centered ? mu.data<T>() : nullptr;
    const T* pw = w.defined() ? w.data<T>() : nullptr;
    T* pdx = dx.defined() ? dx.mutable_data<T>() : nullptr;
    T* pdw = dw.defined() ? dw.mutable_data<T>() : nullptr;
    T* pdb = db.defined() ? db.mutable_data<T>() : nullptr;
    const T inv_D = T(1) / static_cast<T>(D);
    // dγ and dβ, side by side in one vector [dγ | dβ], through parallel_reduce: fixed chunks of
    // rows, each summed in row order and folded in chunk order, so the bits do not depend on the
    // thread count; each chunk also writes its rows' dx.
    const int64_t chunk_rows = std::max(kNormChunkRows, parallel::rows_grain(4 * D));
    simd::with_kernels<T>([&](auto kernel) {  // one ISA dispatch for all the rows
      const std::vector<T> sums = parallel::parallel_reduce(
          int64_t(0), rows, chunk_rows, std::vector<T>(static_cast<size_t>(2 * D), T(0)),
          [&](int64_t n0, int64_t n1) {
            std::vector<T> part(static_cast<size_t>(2 * D), T(0));
            T *cw = part.data(), *cb = part.data() + D;
            for (int64_t n = n0; n < n1; ++n) {
              const T *x = px + n * D, *g = pg + n * D;
              const T m = pm ? pm[n] : T(0), r = pr[n];
              if (pdw)
                for (int64_t c = 0; c < D; ++c) cw[c] += g[c] * ((x[c] - m) * r);
              if (pdb)
                for (int64_t c = 0; c < D; ++c) cb[c] += g[c];
              if (!pdx) continue;
              T* dx = pdx + n * D;
              const T* gw = g;  // g·γ, written into dx first
              if (pw) {
                for (int64_t c = 0; c < D; ++c) dx[c] = g[c] * pw[c];
                gw = dx;
              }
              // dx = r·(gγ − a) − k·(x − μ),  a = mean(gγ),  k = r³·mean(gγ·(x − μ))
              const auto [sum, dot] = kernel.row_sums(gw, x, m, D, centered);
              const T a = sum * inv_D, k = r * r * r * dot * inv_D;
              for (int64_t c = 0; c < D; ++c) dx[c] = r * (gw[c] - a) - k * (x[c] - m);
            }
            return part;
          },
          [](std::vector<T> acc, const std::vector<T>& part) {
            for (size_t i = 0; i < acc.size(); ++i) acc[i] += part[i];
            return acc;
          });
      if (pdw) std::copy_n(sums.data(), D, pdw);
      if (pdb) std::copy_n(sums.data() + D, D, pdb);
    });
  }
};

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
  check_row_norm_dtypes("layer_norm", x, {{"weight", &weight}, {"bias", &bias}});
  const RowNorm<true> norm(x, normalized_shape);
  Tensor mu = Tensor::empty({norm.rows}, x.dtype()), rstd = Tensor::empty({norm.rows}, x.dtype());
  Tensor result = norm.forward(x, weight, bias, mu, rstd, eps);
  // x is saved, not x̂ = (x − μ)·r: saving x copies nothing (the input is alive anyway), x̂ costs one
  // fma per element to rebuild in the backward, and the create_graph formula needs x itself
  return record("layer_norm", result, {x, weight, bias}, save_for_backward(x, weight, mu, rstd),
                [axes, eps, norm](const BackwardContext& ctx) -> Grads {
    if (grad_enabled()) return norm.composite_backward(ctx, axes, ctx.saved(0), ctx.saved(1), eps);
    return norm.backward(ctx, ctx.saved(0), ctx.saved(1), ctx.saved(2), ctx.saved(3));
  });
}

Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, std::optional<double> eps_opt) {
  const Axes axes = check_normalized_shape("rms_norm", x, normalized_shape, {&weight});
  check_row_norm_dtypes("rms_norm", x, {{"weight", &weight}});
  const double eps = eps_opt ? *eps_opt
                             : (x.dtype() == DType::f32 ? double(std::numeric_limits<float>::epsilon())
                                                        : std::numeric_limits<double>::epsilon());
  if (!(eps >= 0)) throw std::invalid_argument("tapegrad::nn::rms_norm: eps must be >= 0, got " + std::to_string(eps));
  const RowNorm<false> norm(x, normalized_shape);
  Tensor rstd = Tensor::empty({norm.rows}, x.dtype());  // r = 1/√(mean(x²) + ε) per row
  Tensor result = norm.forward(x, weight, Tensor(), Tensor(), rstd, eps);
  return record("rms_norm", result, {x, weight}, save_for_backward(x, weight, rstd),
                [axes, eps, norm](const BackwardContext& ctx) -> Grads {
    if (grad_enabled()) return norm.composite_backward(ctx, axes, ctx.saved(0), ctx.saved(1), eps);
    return norm.backward(ctx, ctx.saved(0), ctx.saved(1), Tensor(), ctx.saved(2));
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
