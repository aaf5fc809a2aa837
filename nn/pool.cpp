// Pooling. max_pool2d is one fused recorded op: a single pass finds each window's first maximum,
// writes it and keeps its position; backward scatters the gradient onto those positions with a
// recorded op whose own backward gathers them again, so gradients of every order still come out.
// The common 2×2, stride-2 case keeps no positions: its backward finds the taps again in the saved
// input (simd::max_pool_2x2_backward writes the gradient densely). avg_pool2d is the mean of
// im2col's columns.
#include <algorithm>
#include <string>
#include <vector>

#include "autograd/functions.hpp"
#include "autograd/node.hpp"
#include "autograd/parallel.hpp"
#include "autograd/simd.hpp"
#include "nn/functional.hpp"

namespace tapegrad::nn::functional {
namespace {

struct PoolArgs {
  Size2 kernel, stride, padding;
  int64_t oh, ow;
};

PoolArgs pool_args(const char* op, const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  if (!x.defined()) throw std::invalid_argument(std::string("tapegrad::nn::") + op + ": input is undefined");
  if (x.dim() != 4) throw ShapeError(std::string("tapegrad::nn::") + op + ": expects a 4-D NCHW input, got " + to_string(x.shape()));
  if (!is_floating(x.dtype())) throw DTypeError(std::string("tapegrad::nn::") + op + ": expected a floating tensor");
  if (stride.h == 0 && stride.w == 0) stride = kernel;
  if (kernel.h <= 0 || kernel.w <= 0 || stride.h <= 0 || stride.w <= 0 || padding.h < 0 || padding.w < 0 ||
      padding.h > kernel.h / 2 || padding.w > kernel.w / 2)
    throw ShapeError(std::string("tapegrad::nn::") + op + ": needs kernel, stride > 0 and 0 <= padding <= kernel/2, got kernel [" +
                     std::to_string(kernel.h) + ", " + std::to_string(kernel.w) + "], stride [" + std::to_string(stride.h) +
                     ", " + std::to_string(stride.w) + "], padding [" + std::to_string(padding.h) + ", " +
                     std::to_string(padding.w) + "]");
  // 2·padding <= kernel here, so this form cannot overflow.
  const int64_t h = x.size(2) - (kernel.h - 2 * padding.h), w = x.size(3) - (kernel.w - 2 * padding.w);
  if (h < 0 || w < 0)
    throw ShapeError(std::string("tapegrad::nn::") + op + ": kernel [" + std::to_string(kernel.h) + ", " +
                     std::to_string(kernel.w) + "] is larger than the padded input " + to_string(x.shape()));
  return {kernel, stride, padding, h / stride.h + 1, w / stride.w + 1};
}

/// The tap picked per window (flat position in its plane) and the picked value, read from and
/// written to [planes, H·W] and [planes, oh·ow]. Two recorded ops, each other's adjoint and each
/// other's backward, so max_pool2d has gradients of every order.
Tensor pool_scatter(const Tensor& grad, const Tensor& idx, const Shape& in_shape);

/// The shared loop: kScatter zeroes image[plane] and adds picked[plane, k] onto
/// image[plane, idx[plane, k]] (plane by plane, so the adds hit the cache the zeroing just
/// filled), otherwise it copies image[plane, idx[plane, k]] into picked[plane, k].
template <bool kScatter>
void pool_move(const Tensor& image, const Tensor& picked, const Tensor& idx) {
  const int64_t planes = idx.size(0), per_out = idx.size(1), per_in = planes ? image.numel() / planes : 0;
  const int64_t* pi = idx.data<int64_t>();
  auto run = [&](auto z) {
    using T = decltype(z);
    std::conditional_t<kScatter, T*, const T*> img;   // written only when scattering
    std::conditional_t<kScatter, const T*, T*> pick;  // written only when gathering
    if constexpr (kScatter) img = image.mutable_data<T>(), pick = picked.data<T>();
    else img = image.data<T>(), pick = picked.mutable_data<T>();
    // planes in parallel: a plane's taps all lie in its own image plane
    parallel::parallel_for(0, planes, parallel::rows_grain(per_out), [&](int64_t p0, int64_t p1) {
      for (int64_t plane = p0; plane < p1; ++plane) {
        auto* im = img + plane * per_in;
        const int64_t* at = pi + plane * per_out;
        auto* pk = pick + plane * per_out;
        if constexpr (kScatter) std::fill(im, im + per_in, T(0));
        for (int64_t k = 0; k < per_out; ++k) {
          if constexpr (kScatter) im[at[k]] += pk[k];
          else pk[k] = im[at[k]];
        }
      }
    });
  };
  if (image.dtype() == DType::f32) run(float{});
  else run(double{});
}

Tensor pool_gather(const Tensor& x, const Tensor& idx, const Shape& out_shape) {
  Tensor result = Tensor::empty(out_shape, x.dtype());
  pool_move<false>(x, result, idx);
  return record("max_pool2d_gather", result, {x}, save_for_backward(idx), [in = x.shape()](const BackwardContext& ctx) -> Grads {
    return {pool_scatter(ctx.grad, ctx.saved(0), in)};
  });
}

Tensor pool_scatter(const Tensor& grad, const Tensor& idx, const Shape& in_shape) {
  Tensor result = Tensor::empty(in_shape, grad.dtype());
  pool_move<true>(result, grad, idx);
  return record("max_pool2d_scatter", result, {grad}, save_for_backward(idx), [out = grad.shape()](const BackwardContext& ctx) -> Grads {
    return {pool_gather(ctx.grad, ctx.saved(0), out)};
  });
}

/// The 2×2, stride-2 case. pool2x2(x, src): src's values at x's taps (src = x: max_pool2d itself),
/// recorded as an op of src with x saved; pool2x2_backward(grad, x): grad onto x's taps, 0
/// elsewhere, recorded as an op of grad. Each is the other's backward (x is a constant of both:
/// the taps do not move under a small change of x), so gradients of every order come out. Finding
/// the taps again costs one vector pass over x; keeping int64 positions from the forward cost
/// more (their writes) and needed a zero fill and a scatter in backward.
Tensor pool2x2_backward(const Tensor& grad, const Tensor& x);

/// The planes of x [N, C, H, W] split over threads: make(T{}) runs once on the calling thread (take
/// the data pointers there) and returns the body, called as body(first plane, end plane).
template <class Make>
void over_planes(const Tensor& x, Make make) {
  const int64_t planes = x.size(0) * x.size(1);
  auto run = [&](auto z) { parallel::parallel_for(0, planes, parallel::rows_grain(x.size(2) * x.size(3)), make(z)); };
  if (x.dtype() == DType::f32) run(float{});
  else run(double{});
}

Tensor pool2x2(const char* op, const Tensor& x, const Tensor& src) {
  const int64_t H = x.size(2), W = x.size(3), per_in = H * W, per_out = (H / 2) * (W / 2);
  Tensor result = Tensor::empty({x.size(0), x.size(1), H / 2, W / 2}, x.dtype());
  over_planes(x, [&](auto z) {
    using T = decltype(z);
    const T *px = x.data<T>(), *ps = src.data<T>();
    T* out = result.mutable_data<T>();
    return [=](int64_t p0, int64_t p1) {
      simd::max_pool_2x2(px + p0 * per_in, ps + p0 * per_in, p1 - p0, H, W, out + p0 * per_out);
    };
  });
  return record(op, result, {src}, save_for_backward(x), [](const BackwardContext& ctx) -> Grads {
    return {pool2x2_backward(ctx.grad, ctx.saved(0))};
  });
}

Tensor pool2x2_backward(const Tensor& grad, const Tensor& x) {
  const int64_t H = x.size(2), W = x.size(3), per_in = H * W, per_out = (H / 2) * (W / 2);
  Tensor result = Tensor::empty(x.shape(), x.dtype());
  over_planes(x, [&](auto z) {
    using T = decltype(z);
    const T *px = x.data<T>(), *pg = grad.data<T>();
    T* dx = result.mutable_data<T>();
    return [=](int64_t p0, int64_t p1) {
      simd::max_pool_2x2_backward(px + p0 * per_in, pg + p0 * per_out, p1 - p0, H, W, dx + p0 * per_in);
    };
  });
  return record("max_pool2d_scatter", result, {grad}, save_for_backward(x), [](const BackwardContext& ctx) -> Grads {
    return {pool2x2("max_pool2d_gather", ctx.saved(0), ctx.grad)};
  });
}

/// One pass over x: each window's first maximum (the first NaN wins), its value into `out` and its
/// flat position within the plane into `idx`. Window bounds are clipped once per row and column of
/// windows, and the comparison is written as a select (the compiler may still branch, which
/// mispredicts half the time on random data); the common 2×2 stride-2 case is pool2x2's.
template <class T>
struct Best {
  T v;
  int64_t at;
  void take(T x, int64_t pos) {
    const bool better = x > v || (x != x && v == v);
    v = better ? x : v;
    at = better ? pos : at;
  }
};

template <class T>
void max_scan_planes(const T* x, T* out, int64_t* idx, int64_t planes, int64_t H, int64_t W, const PoolArgs& a) {
  std::vector<int64_t> w0(static_cast<size_t>(a.ow)), w1(static_cast<size_t>(a.ow));
  for (int64_t q = 0; q < a.ow; ++q) {
    const int64_t s = q * a.stride.w - a.padding.w;
    w0[static_cast<size_t>(q)] = std::max<int64_t>(s, 0);
    w1[static_cast<size_t>(q)] = std::min(s + a.kernel.w, W);
  }
  for (int64_t plane = 0; plane < planes; ++plane, x += H * W)
    for (int64_t p = 0; p < a.oh; ++p) {
      const int64_t s = p * a.stride.h - a.padding.h;
      const int64_t h0 = std::max<int64_t>(s, 0), h1 = std::min(s + a.kernel.h, H);
      for (int64_t q = 0; q < a.ow; ++q) {
        const int64_t c0 = w0[static_cast<size_t>(q)], c1 = w1[static_cast<size_t>(q)];
        Best<T> b{x[h0 * W + c0], h0 * W + c0};
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = c0; iw < c1; ++iw) b.take(x[ih * W + iw], ih * W + iw);
        *out++ = b.v;
        *idx++ = b.at;
      }
    }
}

}  // namespace

Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  PoolArgs a = pool_args("max_pool2d", x, kernel, stride, padding);
  if (a.kernel.h == 2 && a.kernel.w == 2 && a.stride.h == 2 && a.stride.w == 2 && a.padding.h == 0 && a.padding.w == 0)
    return pool2x2("max_pool2d", x, x);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), per_out = a.oh * a.ow;
  // idx[plane, p·ow + q] = flat position (within the plane) of the window's first maximum
  Tensor idx = Tensor::empty({N * C, per_out}, DType::i64);
  Tensor result = Tensor::empty({N, C, a.oh, a.ow}, x.dtype());
  over_planes(x, [&](auto z) {  // each plane is scanned alone
    using T = decltype(z);
    const T* px = x.data<T>();
    T* out = result.mutable_data<T>();
    int64_t* at = idx.mutable_data<int64_t>();
    return [=, &a](int64_t p0, int64_t p1) {
      max_scan_planes(px + p0 * H * W, out + p0 * per_out, at + p0 * per_out, p1 - p0, H, W, a);
    };
  });
  return record("max_pool2d", result, {x}, save_for_backward(idx), [in = x.shape()](const BackwardContext& ctx) -> Grads {
    return {pool_scatter(ctx.grad, ctx.saved(0), in)};
  });
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  PoolArgs a = pool_args("avg_pool2d", x, kernel, stride, padding);
  const int64_t N = x.size(0), C = x.size(1);
  // Each plane as its own one-channel image: columns [kh·kw, N·C·oh·ow].
  Tensor cols = im2col(reshape(x, {N * C, 1, x.size(2), x.size(3)}), a.kernel, a.stride, a.padding);
  return reshape(mean(cols, {0}), {N, C, a.oh, a.ow});
}

}  // namespace tapegrad::nn::functional
