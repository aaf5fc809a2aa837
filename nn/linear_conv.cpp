// Linear and convolution. linear is one fused recorded op (gemm with the transpose as a flag, bias
// added in place). conv2d is a fused recorded op that works one image at a time (im2col into a
// cache-sized scratch buffer, one BLAS gemm straight into the output image); its input and weight
// gradients are two more such ops, and the three are each other's backward. im2col and col2im are
// recorded ops too (each other's adjoint and each other's backward), used by avg_pool2d.
// 3×3 stride-1 convolutions may run Winograd F(2×2, 3×3) instead of im2col inside the same three
// ops (nn/conv_winograd.hpp says when).
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "autograd/parallel.hpp"
#include "nn/conv_winograd.hpp"
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
  int64_t padded = 0, span = 0;  // in + 2p and the window's extent d·(k − 1) + 1, checked
  if (__builtin_mul_overflow(p, 2, &padded) || __builtin_add_overflow(in, padded, &padded) ||
      __builtin_mul_overflow(d, k - 1, &span) || __builtin_add_overflow(span, 1, &span))
    throw ShapeError(std::string("tapegrad::nn::") + op + ": input size " + std::to_string(in) + " with padding " +
                     std::to_string(p) + ", kernel " + std::to_string(k) + " and dilation " + std::to_string(d) +
                     " overflow int64");
  int64_t out = (padded - span) / s + 1;
  if (padded - span < 0 || out <= 0)
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
  // The columns [C·kh·kw, N·oh·ow], and so every partial product of them, must be countable.
  Shape({g.n, g.c, g.kh, g.kw, g.oh, g.ow}).numel(op);
  return g;
}

/// The q range [lo, hi) of output columns whose tap iw = q·stride + off falls inside [0, w).
struct Span {
  int64_t lo, hi;
};
Span inside(int64_t off, int64_t stride, int64_t w, int64_t ow) {
  int64_t lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t hi = w - 1 - off < 0 ? 0 : (w - 1 - off) / stride + 1;
  lo = std::min(lo, ow);
  hi = std::clamp(hi, lo, ow);
  return {lo, hi};
}

/// The shared loop of im2col (copies every tap into the columns, 0 outside the image) and col2im
/// (adds every column entry back onto its tap). Bounds are worked out per kernel tap, so the inner
/// loop runs branch-free over a contiguous range of output columns.
template <class T, bool kToCols>
void unfold(const Geometry& g, std::conditional_t<kToCols, const T*, T*> img,
            std::conditional_t<kToCols, T*, const T*> cols) {
  const int64_t L = g.n * g.oh * g.ow;
  // Channels in parallel: channel c owns its column rows and (col2im) its image planes, and each
  // element is visited in the same order at any thread count.
  parallel::parallel_for(0, g.c, parallel::rows_grain(g.kh * g.kw * L), [&](int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        auto* row = cols + ((c * g.kh + i) * g.kw + j) * L;
        const int64_t off = j * g.dw - g.pw;
        const Span s = inside(off, g.sw, g.w, g.ow);
        for (int64_t n = 0; n < g.n; ++n) {
          auto* plane = img + (n * g.c + c) * g.h * g.w;
          for (int64_t p = 0; p < g.oh; ++p) {
            auto* out = row + (n * g.oh + p) * g.ow;
            const int64_t ih = p * g.sh - g.ph + i * g.dh;
            if (ih < 0 || ih >= g.h) {
              if constexpr (kToCols) std::fill_n(out, g.ow, T(0));
              continue;
            }
            auto* line = plane + ih * g.w + off;  // line[q·sw] is the tap of column q
            if constexpr (kToCols) {
              std::fill_n(out, s.lo, T(0));
              if (g.sw == 1) std::copy(line + s.lo, line + s.hi, out + s.lo);
              else
                for (int64_t q = s.lo; q < s.hi; ++q) out[q] = line[q * g.sw];
              std::fill(out + s.hi, out + g.ow, T(0));
            } else if (g.sw == 1) {
              for (int64_t q = s.lo; q < s.hi; ++q) line[q] += out[q];
            } else {
              for (int64_t q = s.lo; q < s.hi; ++q) line[q * g.sw] += out[q];
            }
          }
        }
      }
  });
}

/// The window parameters of one convolution, kept by its backward functions.
struct ConvArgs {
  Size2 stride, padding, dilation;
};

/// Images per group of the weight gradient's partial sums (fixed: the result must not depend on
/// the thread count). 8 keeps a batch of 32 in 4 groups, enough for 2–4 threads.
constexpr int64_t kWeightGradGroup = 8;

/// fn(n0, n1) over images [0, n) (or groups of them) of `cost` elements each: in parallel when
/// there are enough (each thread then runs its own products on one thread; unsplit, a large
/// product splits itself, ops/linalg.cpp).
template <class F>
void images_in_parallel(int64_t n, int64_t cost, F&& fn) {
  parallel::parallel_for(0, n, parallel::rows_grain(cost), fn);
}

/// One image at a time: im2col of image n goes to a scratch buffer [C·kh·kw, oh·ow] small enough
/// to stay in cache, and each gemm writes straight into image n of the [N, O, oh, ow] output, so
/// no whole-batch column matrix, permute or col2im pass over memory is needed. The three ops below
/// (the convolution and its two gradients) are closed under differentiation: each one's backward
/// is written with the other two, so every order of gradient is recorded.
Tensor conv_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, ConvArgs a);
Tensor conv_input_grad(const Tensor& grad, const Tensor& weight, const Shape& x_shape, ConvArgs a);
Tensor conv_weight_grad(const Tensor& grad, const Tensor& x, const Shape& w_shape, ConvArgs a);

Geometry conv_geometry(const Shape& x_shape, const Shape& w_shape, ConvArgs a) {
  Geometry g = geometry("conv2d", x_shape, {w_shape[2], w_shape[3]}, a.stride, a.padding, a.dilation);
  g.n = 1;  // unfold works on one image at a time
  return g;
}

/// Whether the convolution by a weight of shape w_shape runs Winograd rather than im2col
/// (conv_choice): the same answer for the forward op and both gradients.
bool use_winograd(const Shape& w_shape, ConvArgs a) {
  const ConvWindow window{w_shape[2],  w_shape[3],  a.stride.h,   a.stride.w,
                          a.padding.h, a.padding.w, a.dilation.h, a.dilation.w};
  return conv_choice(w_shape[1], w_shape[0], window) == ConvAlgorithm::winograd;
}

/// The Winograd sizes of the forward convolution of x_shape by a 3×3 weight w_shape.
detail::WinogradShape winograd_shape(const Shape& x_shape, const Shape& w_shape, const Geometry& g) {
  return {x_shape[0], x_shape[1], x_shape[2], x_shape[3], w_shape[0], g.ph, g.pw, g.oh, g.ow};
}

/// Σ over images and positions of grad [N, O, oh, ow], per channel: the bias gradient. Channels
/// split over threads; each channel adds its images' sums in image order at any thread count.
/// Its own gradient is a broadcast.
Tensor conv_bias_grad(const Tensor& grad) {
  const int64_t N = grad.size(0), O = grad.size(1), L = grad.size(2) * grad.size(3);
  Tensor result = zeros({O}, grad.dtype());
  dispatch_float("conv2d", grad.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* g = grad.data<T>();
    T* out = result.mutable_data<T>();
    parallel::parallel_for(0, O, parallel::rows_grain(N * L), [&](int64_t o0, int64_t o1) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = o0; o < o1; ++o) {
          const T* gp = g + (n * O + o) * L;
          T acc[8] = {};  // independent partial sums, so the loop vectorises
          int64_t k = 0;
          for (; k + 8 <= L; k += 8)
            for (int64_t u = 0; u < 8; ++u) acc[u] += gp[k + u];
          for (; k < L; ++k) acc[0] += gp[k];
          for (int64_t u = 0; u < 8; ++u) out[o] += acc[u];
        }
    });
  });
  return record("conv2d_bias_grad", result, {grad}, [shape = grad.shape(), O](const BackwardContext& ctx) -> Grads {
    return {expand(reshape(ctx.grad, {1, O, 1, 1}), shape)};
  });
}

Tensor conv_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, ConvArgs a) {
  Geometry g = conv_geometry(x.shape(), weight.shape(), a);
  const int64_t N = x.size(0), O = weight.size(0), K = g.c * g.kh * g.kw, L = g.oh * g.ow;
  Tensor result = Tensor::empty({N, O, g.oh, g.ow}, x.dtype());
  dispatch_float("conv2d", x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T *px = x.data<T>(), *pw = weight.data<T>(), *pb = bias.defined() ? bias.data<T>() : nullptr;
    T* pr = result.mutable_data<T>();
    if (use_winograd(weight.shape(), a))
      return detail::winograd_conv<T>(winograd_shape(x.shape(), weight.shape(), g), px, pw, false, pb, pr);
    images_in_parallel(N, K * L, [&](int64_t n0, int64_t n1) {
      std::vector<T> cols(static_cast<size_t>(K * L));  // this range's scratch
      for (int64_t n = n0; n < n1; ++n) {
        T* out = pr + n * O * L;
        if (pb)
          for (int64_t o = 0; o < O; ++o) std::fill_n(out + o * L, L, pb[o]);
        unfold<T, true>(g, px + n * g.c * g.h * g.w, cols.data());
        kernels::gemm_raw<T>(pw, cols.data(), out, O, L, K, false, false, T(pb ? 1 : 0));  // W·cols
      }
    });
  });
  return record("conv2d", result, {x, weight, bias}, save_for_backward(x, weight),
                [a, has_bias = bias.defined()](const BackwardContext& ctx) -> Grads {
    const Tensor &x = ctx.saved(0), &weight = ctx.saved(1);
    return {ctx.needs(0) ? conv_input_grad(ctx.grad, weight, x.shape(), a) : Tensor(),
            ctx.needs(1) ? conv_weight_grad(ctx.grad, x, weight.shape(), a) : Tensor(),
            has_bias && ctx.needs(2) ? conv_bias_grad(ctx.grad) : Tensor()};
  });
}

/// dL/dx = col2im(Wᵀ·grad), per image. Linear in grad and in W.
Tensor conv_input_grad(const Tensor& grad, const Tensor& weight, const Shape& x_shape, ConvArgs a) {
  Geometry g = conv_geometry(x_shape, weight.shape(), a);
  const int64_t N = x_shape[0], O = weight.size(0), K = g.c * g.kh * g.kw, L = g.oh * g.ow, img = g.c * g.h * g.w;
  Tensor result = Tensor::empty(x_shape, grad.dtype());
  dispatch_float("conv2d", grad.dtype(), [&](auto z) {
    using T = decltype(z);
    const T *pw = weight.data<T>(), *pg = grad.data<T>();
    T* pr = result.mutable_data<T>();
    if (use_winograd(weight.shape(), a)) {  // grad ⋆ the rotated, channel-swapped filters at padding 2 − p
      const detail::WinogradShape s{N, O, g.oh, g.ow, g.c, 2 - g.ph, 2 - g.pw, g.h, g.w};
      return detail::winograd_conv<T>(s, pg, pw, true, nullptr, pr);
    }
    images_in_parallel(N, K * L, [&](int64_t n0, int64_t n1) {
      std::vector<T> cols(static_cast<size_t>(K * L));  // this range's scratch
      for (int64_t n = n0; n < n1; ++n) {
        kernels::gemm_raw<T>(pw, pg + n * O * L, cols.data(), K, L, O, true, false, T(0));  // Wᵀ·g
        T* out = pr + n * img;
        std::fill_n(out, img, T(0));
        unfold<T, false>(g, out, cols.data());
      }
    });
  });
  return record("conv2d_input_grad", result, {grad, weight}, save_for_backward(grad, weight), [a](const BackwardContext& ctx) -> Grads {
    const Tensor &grad = ctx.saved(0), &weight = ctx.saved(1);
    return {ctx.needs(0) ? conv_forward(ctx.grad, weight, Tensor(), a) : Tensor(),
            ctx.needs(1) ? conv_weight_grad(grad, ctx.grad, weight.shape(), a) : Tensor()};
  });
}

/// dL/dW = Σ_n grad_n·im2col(x_n)ᵀ, accumulated by the gemm (beta = 1). Linear in grad and in x.
Tensor conv_weight_grad(const Tensor& grad, const Tensor& x, const Shape& w_shape, ConvArgs a) {
  Geometry g = conv_geometry(x.shape(), w_shape, a);
  const int64_t N = x.size(0), O = w_shape[0], K = g.c * g.kh * g.kw, L = g.oh * g.ow;
  Tensor result = zeros(w_shape, grad.dtype());
  dispatch_float("conv2d", grad.dtype(), [&](auto z) {
    using T = decltype(z);
    const T *px = x.data<T>(), *pg = grad.data<T>();
    T* pr = result.mutable_data<T>();
    if (use_winograd(w_shape, a)) return detail::winograd_weight_grad<T>(winograd_shape(x.shape(), w_shape, g), pg, px, pr);
    // Images in fixed groups of kWeightGradGroup: each group's products accumulate into its own
    // partial (group 0 straight into the result), then the partials are added in group order, so
    // the sum is the same at every thread count.
    const int64_t groups = (N + kWeightGradGroup - 1) / kWeightGradGroup, wsize = O * K;
    std::vector<T> partials(static_cast<size_t>(groups > 1 ? (groups - 1) * wsize : 0), T(0));
    images_in_parallel(groups, kWeightGradGroup * K * L, [&](int64_t g0, int64_t g1) {
      std::vector<T> cols(static_cast<size_t>(K * L));  // this range's scratch
      for (int64_t gi = g0; gi < g1; ++gi) {
        T* acc = gi == 0 ? pr : partials.data() + (gi - 1) * wsize;
        for (int64_t n = gi * kWeightGradGroup; n < std::min(N, (gi + 1) * kWeightGradGroup); ++n) {
          unfold<T, true>(g, px + n * g.c * g.h * g.w, cols.data());
          kernels::gemm_raw<T>(pg + n * O * L, cols.data(), acc, O, K, L, false, true, T(1));  // g·colsᵀ
        }
      }
    });
    for (int64_t gi = 1; gi < groups; ++gi) {
      const T* part = partials.data() + (gi - 1) * wsize;
      for (int64_t i = 0; i < wsize; ++i) pr[i] += part[i];
    }
  });
  return record("conv2d_weight_grad", result, {grad, x}, save_for_backward(grad, x), [a](const BackwardContext& ctx) -> Grads {
    const Tensor &grad = ctx.saved(0), &x = ctx.saved(1);
    return {ctx.needs(0) ? conv_forward(x, ctx.grad, Tensor(), a) : Tensor(),
            ctx.needs(1) ? conv_input_grad(grad, ctx.grad, x.shape(), a) : Tensor()};
  });
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
    if (!bias.defined()) {
      result = gemm(x2, weight, false, true);  // [rows, in] · [out, in]ᵀ
    } else {
      // the bias rows first, then the product added onto them (beta = 1): one pass over the output
      // instead of BLAS clearing it and a second pass adding the bias
      const int64_t rows = x2.size(0);
      result = Tensor::empty({rows, out_features}, x.dtype());
      dispatch_float("linear", x.dtype(), [&](auto z) {
        using T = decltype(z);
        T* y = result.mutable_data<T>();
        const T* b = bias.data<T>();
        parallel::parallel_for(0, rows, parallel::rows_grain(out_features), [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r) std::copy_n(b, out_features, y + r * out_features);
        });
        kernels::gemm_raw<T>(x2.data<T>(), weight.data<T>(), y, rows, out_features, x2.size(1), false, true, T(1));
      });
    }
    if (x.dim() != 2) result = reshape(result, out_shape);
  }
  return record("linear", result, {x, weight, bias}, save_for_backward(x, weight),
                [has_bias = bias.defined()](const BackwardContext& ctx) -> Grads {
    const Tensor &x = ctx.saved(0), &weight = ctx.saved(1);
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
    unfold<T, true>(g, x.data<T>(), result.mutable_data<T>());
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
    unfold<T, false>(g, result.mutable_data<T>(), cols.data<T>());
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
  geometry("conv2d", x.shape(), {weight.size(2), weight.size(3)}, stride, padding, dilation);  // validates the window
  return conv_forward(x, weight, bias, {stride, padding, dilation});
}

}  // namespace tapegrad::nn::functional
