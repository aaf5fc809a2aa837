// softmax and log_softmax along an axis, max-shifted so that any finite logits give finite values.
// Their gradients are written with differentiable ops (second order works):
//   softmax:     dx = y · (g − Σ g·y)
//   log_softmax: dx = g − exp(y) · Σ g
#include <cmath>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"

namespace tapegrad {
namespace {

Tensor softmax_kernel(const char* op, const Tensor& x, int64_t axis, bool log_form) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (x.numel() == 0) return out;
  const int64_t n = x.size(axis);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.size(i);
  for (int64_t i = axis + 1; i < x.dim(); ++i) inner *= x.size(i);
  kernels::dispatch(x.dtype(), op, [&](auto z) {
    using T = decltype(z);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const T* in = px + o * n * inner + i;
        T* dst = po + o * n * inner + i;
        T m = in[0];
        for (int64_t k = 1; k < n; ++k) m = in[k * inner] > m ? in[k * inner] : m;
        if (!std::isfinite(m)) m = T(0);
        T total = 0;
        for (int64_t k = 0; k < n; ++k) {
          T e = std::exp(in[k * inner] - m);
          if (!log_form) dst[k * inner] = e;
          total += e;
        }
        if (log_form) {
          T shift = m + std::log(total);
          for (int64_t k = 0; k < n; ++k) dst[k * inner] = in[k * inner] - shift;
        } else {
          T inv = T(1) / total;
          for (int64_t k = 0; k < n; ++k) dst[k * inner] *= inv;
        }
      }
  });
  return out;
}

int64_t softmax_axis(const char* op, const Tensor& x, int64_t axis) {
  kernels::check_defined(op, x);
  if (x.dim() == 0) throw ShapeError(std::string("tapegrad::") + op + ": needs at least one dimension");
  return kernels::normalize_axis(op, axis, x.dim());
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t axis_in) {
  int64_t axis = softmax_axis("softmax", x, axis_in);
  Tensor result = softmax_kernel("softmax", x, axis, false);
  return record(
      "softmax", result, {x},
      [axis](const BackwardContext& ctx) -> Grads {
        const Tensor& y = ctx.result;
        return {mul(y, sub(ctx.grad, sum(mul(ctx.grad, y), {axis}, true)))};
      },
      true);
}

Tensor log_softmax(const Tensor& x, int64_t axis_in) {
  int64_t axis = softmax_axis("log_softmax", x, axis_in);
  Tensor result = softmax_kernel("log_softmax", x, axis, true);
  return record(
      "log_softmax", result, {x},
      [axis](const BackwardContext& ctx) -> Grads {
        return {sub(ctx.grad, mul(exp(ctx.result), sum(ctx.grad, {axis}, true)))};
      },
      true);
}

}  // namespace tapegrad
