// Linear and convolution. linear is one fused recorded op (gemm with the transpose as a flag, bias
// added in place); conv2d is a composite over im2col, the core gemm and permute, so its gradient
// comes from theirs. im2col and col2im are each other's adjoint and each other's backward.
#include <algorithm>
#include <string>

#include "autograd/functions.hpp"
#include "autograd/node.hpp"
#include "nn/functional.hpp"

namespace tapegrad::nn::functional {
namespace {

std::string shapes(const Tensor& a, const Tensor& b) { return to_string(a.shape()) + " and " + to_string(b.shape()); }

template <class F>
void dispatch_float(const char* op, DType d, F&& f) {
  if (d == DType::f32) f(float{});
  else if (d == DType::f64) f(double{});
  else throw DTypeError(std::string("tapegrad::nn::") + op + ": expected a floating tensor, got " + dtype_name(d));
}

void check_defined(const char* op, const Tensor& t, const char* what) {
  if (!t.defined()) throw std::invalid_argument(std::string("tapegrad::nn::") + op + ": " + what + " is undefined");
}

/// Output size of a sliding window; ShapeError naming the op when it is not positive.
int64_t window_out(const char* op, int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  if (k <= 0 || s <= 0 || p < 0 || d <= 0)
    throw ShapeError(std::string("tapegrad::nn::") + op + ": needs kernel, stride, dilation > 0 and padding >= 0, got kernel " +
                     std::to_string(k) + ", stride " + std::to_string(s) + ", padding " + std::to_string(p) +
                     ", dilation " + std::to_string(d));
  int64_t out = (in + 2 * p - d * (k - 1) - 1) / s + 1;
  if (in + 2 * p - d * (k - 1) - 1 < 0 || out <= 0)
    throw ShapeError(std::string("tapegrad::nn::") + op + ": a window of " + std::to_string(k) + " (dilation " +
                     std::to_string(d) + ") does not fit an input of size " + std::to_string(in) + " with padding " +
                     std::to_string(p));
  return out;
}

struct Geometry {
  int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;
};

Geometry geometry(const char* op, const Shape& in, Size2 k, Size2 s, Size2 p, Size2 d) {
  if (in.size() != 4) throw ShapeError(std::string("tapegrad::nn::") + op + ": expects a 4-D NCHW input, got " + to_string(in));
  Geometry g{in[0], in[1], in[2], in[3], k.h, k.w, s.h, s.w, p.h, p.w, d.h, d.w, 0, 0};
  g.oh = window_out(op, g.h, k.h, s.h, p.h, d.h);
  g.ow = window_out(op, g.w, k.w, s.w, p.w, d.w);
  return g;
}

/// The shared loop of im2col (copies every tap into the columns, 0 outside the image) and col2im
/// (adds every column entry back onto its tap).
template <class T, bool kToCols>
void unfold(const Geometry& g, T* img, T* cols) {
  const int64_t L = g.n * g.oh * g.ow;
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        T* row = cols + ((c * g.kh + i) * g.kw + j) * L;
        for (int64_t n = 0; n < g.n; ++n) {
          T* plane = img + (n * g.c + c) * g.h * g.w;
          for (int64_t p = 0; p < g.oh; ++p) {
            T* out = row + (n * g.oh + p) * g.ow;
            const int64_t ih = p * g.sh - g.ph + i * g.dh;
            if (ih < 0 || ih >= g.h) {
              if constexpr (kToCols) std::fill_n(out, g.ow, T(0));
              continue;
            }
            T* line = plane + ih * g.w;
            const int64_t off = j * g.dw - g.pw;
            for (int64_t q = 0; q < g.ow; ++q) {
              const int64_t iw = q * g.sw + off;
              const bool inside = iw >= 0 && iw < g.w;
              if constexpr (kToCols) out[q] = inside ? line[iw] : T(0);
              else if (inside) line[iw] += out[q];
            }
          }
        }
      }
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_defined("linear", x, "input");
  check_defined("linear", weight, "weight");
  if (x.dtype() != weight.dtype() || (bias.defined() && bias.dtype() != x.dtype()))
    throw DTypeError("tapegrad::nn::linear: dtypes differ: input " + std::string(dtype_name(x.dtype())) + ", weight " +
                     dtype_name(weight.dtype()) + (bias.defined() ? std::string(", bias ") + dtype_name(bias.dtype()) : ""));
  if (weight.dim() != 2 || x.dim() < 1 || x.size(-1) != weight.size(1))
    throw ShapeError("tapegrad::nn::linear: input " + to_string(x.shape()) + " does not match weight " +
                     to_string(weight.shape()) + " (expects input [..., in] and weight [out, in])");
  const int64_t out_features = weight.size(0);
  if (bias.defined() && bias.shape() != Shape{out_features})
    throw ShapeError("tapegrad::nn::linear: bias " + to_string(bias.shape()) + " does not match weight " +
                     to_string(weight.shape()) + " (expects [" + std::to_string(out_features) + "])");
  Shape out_shape = x.shape();
  out_shape[out_shape.size() - 1] = out_features;
  Tensor result;
  {
    NoGradGuard no_grad;
    Tensor x2 = x.dim() == 2 ? x : reshape(x, {-1, x.size(-1)});
    result = gemm(x2, weight, false, true);  // [rows, in] · [out, in]ᵀ
    if (bias.defined())
      dispatch_float("linear", x.dtype(), [&](auto z) {
        using T = decltype(z);
        T* y = result.data<T>();
        const T* b = bias.data<T>();
        const int64_t rows = result.size(0);
        for (int64_t r = 0; r < rows; ++r, y += out_features)
          for (int64_t o = 0; o < out_features; ++o) y[o] += b[o];
      });
    if (x.dim() != 2) result = reshape(result, out_shape);
  }
  return record("linear", result, {x, weight, bias}, [x, weight, has_bias = bias.defined()](const BackwardContext& ctx) -> Grads {
    const int64_t in = weight.size(1), out = weight.size(0);
    Tensor g2 = ctx.grad.dim() == 2 ? ctx.grad : reshape(ctx.grad, {-1, out});
    Tensor gx, gw, gb;
    if (ctx.needs(0)) gx = reshape(gemm(g2, weight), x.shape());                                  // g·W
    if (ctx.needs(1)) gw = gemm(g2, x.dim() == 2 ? x : reshape(x, {-1, in}), true, false);        // gᵀ·x
    if (has_bias && ctx.needs(2)) gb = sum(g2, {0});
    return {gx, gw, gb};
  });
}

Tensor im2col(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding, Size2 dilation) {
  check_defined("im2col", x, "input");
  Geometry g = geometry("im2col", x.shape(), kernel, stride, padding, dilation);
  Tensor result = Tensor::empty({g.c * g.kh * g.kw, g.n * g.oh * g.ow}, x.dtype());
  dispatch_float("im2col", x.dtype(), [&](auto z) {
    using T = decltype(z);
    unfold<T, true>(g, x.data<T>(), result.data<T>());
  });
  return record("im2col", result, {x}, [in = x.shape(), kernel, stride, padding, dilation](const BackwardContext& ctx) -> Grads {
    return {col2im(ctx.grad, in, kernel, stride, padding, dilation)};
  });
}

Tensor col2im(const Tensor& cols, const Shape& input_shape, Size2 kernel, Size2 stride, Size2 padding, Size2 dilation) {
  check_defined("col2im", cols, "columns");
  Geometry g = geometry("col2im", input_shape, kernel, stride, padding, dilation);
  if (cols.shape() != Shape{g.c * g.kh * g.kw, g.n * g.oh * g.ow})
    throw ShapeError("tapegrad::nn::col2im: columns " + to_string(cols.shape()) + " do not match an image of shape " +
                     to_string(input_shape) + " (expects [" + std::to_string(g.c * g.kh * g.kw) + ", " +
                     std::to_string(g.n * g.oh * g.ow) + "])");
  Tensor result = zeros(input_shape, cols.dtype());
  dispatch_float("col2im", cols.dtype(), [&](auto z) {
    using T = decltype(z);
    unfold<T, false>(g, result.data<T>(), cols.data<T>());
  });
  return record("col2im", result, {cols}, [kernel, stride, padding, dilation](const BackwardContext& ctx) -> Grads {
    return {im2col(ctx.grad, kernel, stride, padding, dilation)};
  });
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Size2 stride, Size2 padding, Size2 dilation) {
  check_defined("conv2d", x, "input");
  check_defined("conv2d", weight, "weight");
  if (x.dim() != 4 || weight.dim() != 4 || x.size(1) != weight.size(1))
    throw ShapeError("tapegrad::nn::conv2d: input " + shapes(x, weight) +
                     " do not fit (expects input [N, C, H, W] and weight [O, C, kH, kW])");
  if (x.dtype() != weight.dtype() || (bias.defined() && bias.dtype() != x.dtype()))
    throw DTypeError("tapegrad::nn::conv2d: input, weight and bias dtypes differ");
  const int64_t O = weight.size(0);
  if (bias.defined() && bias.shape() != Shape{O})
    throw ShapeError("tapegrad::nn::conv2d: bias " + to_string(bias.shape()) + " does not match weight " +
                     to_string(weight.shape()));
  Geometry g = geometry("conv2d", x.shape(), {weight.size(2), weight.size(3)}, stride, padding, dilation);
  Tensor cols = im2col(x, {g.kh, g.kw}, stride, padding, dilation);           // [C·kh·kw, N·oh·ow]
  Tensor y = gemm(reshape(weight, {O, g.c * g.kh * g.kw}), cols);             // [O, N·oh·ow]
  y = permute(reshape(y, {O, g.n, g.oh, g.ow}), {1, 0, 2, 3});                // [N, O, oh, ow]
  return bias.defined() ? add(y, reshape(bias, {1, O, 1, 1})) : y;
}

}  // namespace tapegrad::nn::functional
