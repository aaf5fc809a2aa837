// softmax and log_softmax along an axis, max-shifted so that any finite logits give finite values.
// Their gradients
//   softmax:     dx = y · (g − Σ g·y)
//   log_softmax: dx = g − exp(y) · Σ g
// run as one fused pass per row at first order along the last axis, and as differentiable ops when
// the backward itself is recorded (create_graph) or along another axis.
#include <cmath>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "autograd/parallel.hpp"
#include "autograd/simd_kernels.hpp"

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
    T* po = out.mutable_data<T>();
    if (inner == 1) {  // rows are contiguous
      simd::with_kernels<T>([&](auto kernel) {  // one ISA dispatch for all the rows
        parallel::parallel_for(0, outer, parallel::rows_grain(n), [&](int64_t o0, int64_t o1) {
          for (int64_t o = o0; o < o1; ++o) {
            const T* in = px + o * n;
            T* dst = po + o * n;
            T m;
            const T total = kernel.exp_shifted_row(in, log_form ? nullptr : dst, n, m);
            if (log_form) {
              const T shift = m + std::log(total);
              for (int64_t k = 0; k < n; ++k) dst[k] = in[k] - shift;
            } else {
              const T inv = T(1) / total;
              for (int64_t k = 0; k < n; ++k) dst[k] *= inv;
            }
          }
        });
      });
      return;
    }
    parallel::parallel_for(0, outer, parallel::rows_grain(n * inner), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o)
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
  });
  return out;
}

/// First-order backward over contiguous rows, one pass per row:
///   softmax      dx = y · (g − Σ g·y)
///   log_softmax  dx = g − exp(y) · Σ g
/// (the differentiable forms below are what create_graph records).
Tensor softmax_backward_rows(const char* op, const Tensor& y, const Tensor& g, bool log_form) {
  Tensor dx = Tensor::empty(y.shape(), y.dtype());
  const int64_t n = y.size(-1);
  if (y.numel() == 0) return dx;
  const int64_t rows = y.numel() / n;
  kernels::dispatch(y.dtype(), op, [&](auto z) {
    using T = decltype(z);
    const T* y0 = y.data<T>();
    const T* g0 = g.data<T>();
    T* d0 = dx.mutable_data<T>();
    simd::with_kernels<T>([&](auto kernel) {  // one ISA dispatch for all the rows
      parallel::parallel_for(0, rows, parallel::rows_grain(n), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) kernel.softmax_backward_row(y0 + r * n, g0 + r * n, d0 + r * n, n, log_form);
      });
    });
  });
  return dx;
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
        if (!grad_enabled() && axis == y.dim() - 1) return {softmax_backward_rows("softmax", y, ctx.grad, false)};
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
        if (!grad_enabled() && axis == ctx.result.dim() - 1)
          return {softmax_backward_rows("log_softmax", ctx.result, ctx.grad, true)};
        return {sub(ctx.grad, mul(exp(ctx.result), sum(ctx.grad, {axis}, true)))};
      },
      true);
}

}  // namespace tapegrad
