#pragma once
/// \file elementwise_kernels.hpp
/// Internal: the loops behind elementwise ops (elementwise.cpp, compare.cpp) and type promotion
/// of their operands. `A` says which dtypes a kernel accepts (the others are a DTypeError naming
/// the op); `BoolOut` makes the output bool (comparisons) instead of the inputs' dtype.
#include <utility>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/ops/broadcast.hpp"
#include "autograd/parallel.hpp"

namespace tapegrad::kernels {

/// a and b converted to their result type (dtype.hpp), after checking that they broadcast. The
/// conversions are recorded, so each input's gradient comes back in its own dtype. With
/// `floating`, an integral or bool result type becomes float32 (true division).
inline std::pair<Tensor, Tensor> promote(const char* op, const Tensor& a, const Tensor& b, bool floating = false) {
  check_defined(op, a);
  check_defined(op, b);
  DType t = result_type(a, b);
  if (floating && !is_floating(t)) t = DType::f32;
  if (a.dtype() == t && b.dtype() == t) return {a, b};  // the common case: the kernel checks the shapes
  broadcast_shapes(op, a.shape(), b.shape());         // before a conversion is recorded
  return {a.to(t), b.to(t)};
}

/// out = f(a, b) with broadcasting (a and b of one dtype); plain loops specialised for the common
/// stride patterns.
template <Accepts A = Accepts::floating, bool BoolOut = false, class F>
Tensor binary_kernel(const char* op, const Tensor& a, const Tensor& b, F f) {
  check_same_dtype(op, a, b);
  Shape shape = broadcast_shapes(op, a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, BoolOut ? DType::b8 : a.dtype());
  dispatch_as<A>(a.dtype(), op, [&](auto z) {
    using T = decltype(z);
    using O = std::conditional_t<BoolOut, bool, T>;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    O* po = out.mutable_data<O>();
    const int64_t n = out.numel();
    if (a.shape() == b.shape()) {
      parallel::parallel_for(0, n, parallel::kGrain, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) po[i] = static_cast<O>(f(pa[i], pb[i]));
      });
    } else if (b.numel() == 1) {
      const T s = pb[0];
      parallel::parallel_for(0, n, parallel::kGrain, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) po[i] = static_cast<O>(f(pa[i], s));
      });
    } else if (a.numel() == 1) {
      const T s = pa[0];
      parallel::parallel_for(0, n, parallel::kGrain, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) po[i] = static_cast<O>(f(s, pb[i]));
      });
    } else {
      broadcast_rows<2>(shape, {&a.shape(), &b.shape()}, [&](int64_t o, auto off, auto st, int64_t len) {
        const T* x = pa + off[0];
        const T* y = pb + off[1];
        O* r = po + o;
        if (st[0] == 1 && st[1] == 1) {
          for (int64_t i = 0; i < len; ++i) r[i] = static_cast<O>(f(x[i], y[i]));
        } else if (st[0] == 1 && st[1] == 0) {
          const T s = *y;
          for (int64_t i = 0; i < len; ++i) r[i] = static_cast<O>(f(x[i], s));
        } else if (st[0] == 0 && st[1] == 1) {
          const T s = *x;
          for (int64_t i = 0; i < len; ++i) r[i] = static_cast<O>(f(s, y[i]));
        } else {
          for (int64_t i = 0; i < len; ++i) r[i] = static_cast<O>(f(x[i * st[0]], y[i * st[1]]));
        }
      });
    }
  });
  return out;
}

/// out = f(x) with plain loops (arithmetic the compiler vectorises).
template <Accepts A = Accepts::floating, bool BoolOut = false, class F>
Tensor map_kernel(const char* op, const Tensor& x, F f) {
  check_defined(op, x);
  Tensor out = Tensor::empty(x.shape(), BoolOut ? DType::b8 : x.dtype());
  dispatch_as<A>(x.dtype(), op, [&](auto z) {
    using T = decltype(z);
    using O = std::conditional_t<BoolOut, bool, T>;
    const T* px = x.data<T>();
    O* po = out.mutable_data<O>();
    parallel::parallel_for(0, x.numel(), parallel::kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) po[i] = static_cast<O>(f(px[i]));
    });
  });
  return out;
}

/// out = f(x, s) with the scalar converted once to x's element type.
template <Accepts A = Accepts::floating, bool BoolOut = false, class F>
Tensor scalar_kernel(const char* op, const Tensor& x, const Scalar& s, F f) {
  check_defined(op, x);
  Tensor out = Tensor::empty(x.shape(), BoolOut ? DType::b8 : x.dtype());
  dispatch_as<A>(x.dtype(), op, [&](auto z) {
    using T = decltype(z);
    using O = std::conditional_t<BoolOut, bool, T>;
    const T v = s.to<T>();
    const T* px = x.data<T>();
    O* po = out.mutable_data<O>();
    parallel::parallel_for(0, x.numel(), parallel::kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) po[i] = static_cast<O>(f(px[i], v));
    });
  });
  return out;
}

}  // namespace tapegrad::kernels
