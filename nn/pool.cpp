// Pooling as composites of differentiable ops, so gradients of every order come for free:
// max_pool2d finds each window's argmax with a raw loop and picks it with gather (whose gradient is
// scatter_add); avg_pool2d is the mean of im2col's columns.
#include <limits>
#include <string>

#include "autograd/functions.hpp"
#include "autograd/node.hpp"
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
      2 * padding.h > kernel.h || 2 * padding.w > kernel.w)
    throw ShapeError(std::string("tapegrad::nn::") + op + ": needs kernel, stride > 0 and 0 <= padding <= kernel/2, got kernel [" +
                     std::to_string(kernel.h) + ", " + std::to_string(kernel.w) + "], stride [" + std::to_string(stride.h) +
                     ", " + std::to_string(stride.w) + "], padding [" + std::to_string(padding.h) + ", " +
                     std::to_string(padding.w) + "]");
  const int64_t h = x.size(2) + 2 * padding.h - kernel.h, w = x.size(3) + 2 * padding.w - kernel.w;
  if (h < 0 || w < 0)
    throw ShapeError(std::string("tapegrad::nn::") + op + ": kernel [" + std::to_string(kernel.h) + ", " +
                     std::to_string(kernel.w) + "] is larger than the padded input " + to_string(x.shape()));
  return {kernel, stride, padding, h / stride.h + 1, w / stride.w + 1};
}

}  // namespace

Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  PoolArgs a = pool_args("max_pool2d", x, kernel, stride, padding);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  // idx[plane, p·ow + q] = flat position (within the plane) of the window's first maximum
  Tensor idx = Tensor::empty({N * C, a.oh * a.ow}, DType::i64);
  int64_t* pi = idx.data<int64_t>();
  auto scan = [&](auto z) {
    using T = decltype(z);
    const T* px = x.data<T>();
    for (int64_t plane = 0; plane < N * C; ++plane) {
      const T* src = px + plane * H * W;
      for (int64_t p = 0; p < a.oh; ++p)
        for (int64_t q = 0; q < a.ow; ++q) {
          int64_t best = -1;
          T best_v = -std::numeric_limits<T>::infinity();
          for (int64_t i = 0; i < a.kernel.h; ++i) {
            const int64_t ih = p * a.stride.h - a.padding.h + i;
            if (ih < 0 || ih >= H) continue;
            for (int64_t j = 0; j < a.kernel.w; ++j) {
              const int64_t iw = q * a.stride.w - a.padding.w + j;
              if (iw < 0 || iw >= W) continue;
              const T v = src[ih * W + iw];
              if (best < 0 || v > best_v || v != v) best = ih * W + iw, best_v = v;  // NaN propagates
              if (v != v) break;
            }
          }
          *pi++ = best;
        }
    }
  };
  if (x.dtype() == DType::f32) scan(float{});
  else scan(double{});
  Tensor picked = gather(reshape(x, {N * C, H * W}), 1, idx);
  return reshape(picked, {N, C, a.oh, a.ow});
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  PoolArgs a = pool_args("avg_pool2d", x, kernel, stride, padding);
  const int64_t N = x.size(0), C = x.size(1);
  // Each plane as its own one-channel image: columns [kh·kw, N·C·oh·ow].
  Tensor cols = im2col(reshape(x, {N * C, 1, x.size(2), x.size(3)}), a.kernel, a.stride, a.padding);
  return reshape(mean(cols, {0}), {N, C, a.oh, a.ow});
}

}  // namespace tapegrad::nn::functional
