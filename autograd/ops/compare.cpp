// Comparisons, logical ops and selection (where, masked_fill). Comparisons and logical ops
// promote their operands (dtype.hpp) and return bool; they have no gradient. where and
// masked_fill take a bool condition and pass the gradient through the selected elements.
#include <tuple>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "autograd/ops/broadcast.hpp"
#include "autograd/ops/elementwise_kernels.hpp"

namespace tapegrad {

using kernels::Accepts;

DType result_type(const Tensor& a, const Tensor& b) {
  kernels::check_defined("result_type", a);
  kernels::check_defined("result_type", b);
  return result_type(a.dtype(), a.dim(), b.dtype(), b.dim());
}
DType result_type(const Tensor& a, const Scalar& s) {
  kernels::check_defined("result_type", a);
  return result_type(a.dtype(), s);
}

// ---- comparisons ----------------------------------------------------------------------------------
// Computed in the operands' result type (int64 vs 0.5 compares in float32, as PyTorch); NaN
// compares unequal to everything, itself included (IEEE 754).

#define TAPEGRAD_COMPARISON(NAME, EXPR)                                                              \
  Tensor NAME(const Tensor& a, const Tensor& b) {                                                    \
    auto [x, y] = kernels::promote(#NAME, a.detach(), b.detach());                                   \
    return kernels::binary_kernel<Accepts::all, true>(#NAME, x, y, [](auto p, auto q) { return EXPR; }); \
  }                                                                                                  \
  Tensor NAME(const Tensor& a, const Scalar& s) {                                                    \
    kernels::check_defined(#NAME, a);                                                                \
    Tensor x = a.detach().to(result_type(a, s));                                                     \
    return kernels::scalar_kernel<Accepts::all, true>(#NAME, x, s, [](auto p, auto q) { return EXPR; }); \
  }
TAPEGRAD_COMPARISON(eq, p == q)
TAPEGRAD_COMPARISON(ne, p != q)
TAPEGRAD_COMPARISON(lt, p < q)
TAPEGRAD_COMPARISON(le, p <= q)
TAPEGRAD_COMPARISON(gt, p > q)
TAPEGRAD_COMPARISON(ge, p >= q)
#undef TAPEGRAD_COMPARISON

// ---- logical ops ------------------------------------------------------------------------------------
// Any dtype: nonzero (NaN included) is true, as in PyTorch.

#define TAPEGRAD_LOGICAL(NAME, EXPR)                                                              \
  Tensor NAME(const Tensor& a, const Tensor& b) {                                                 \
    auto [x, y] = kernels::promote(#NAME, a.detach(), b.detach());                                \
    return kernels::binary_kernel<Accepts::all, true>(#NAME, x, y, [](auto p, auto q) {           \
      using T = decltype(p);                                                                      \
      const bool u = p != T(0), v = q != T(0);                                                    \
      return EXPR;                                                                                \
    });                                                                                           \
  }
TAPEGRAD_LOGICAL(logical_and, u && v)
TAPEGRAD_LOGICAL(logical_or, u || v)
TAPEGRAD_LOGICAL(logical_xor, u != v)
#undef TAPEGRAD_LOGICAL

Tensor logical_not(const Tensor& x) {
  return kernels::map_kernel<Accepts::all, true>("logical_not", x, [](auto v) { return v == decltype(v)(0); });
}

// ---- selection --------------------------------------------------------------------------------------

namespace {
void check_bool(const char* op, const char* what, const Tensor& t) {
  kernels::check_defined(op, t);
  if (t.dtype() != DType::b8)
    throw DTypeError(std::string("tapegrad::") + op + ": " + what + " must be bool, got " + dtype_name(t.dtype()) + " " +
                     to_string(t.shape()) + " (compare, e.g. gt(x, 0), or convert with .to(DType::b8))");
}
}  // namespace

Tensor where(const Tensor& c, const Tensor& a_in, const Tensor& b_in) {
  check_bool("where", "the condition", c);
  kernels::check_defined("where", a_in);
  kernels::check_defined("where", b_in);
  Shape shape = kernels::broadcast_shapes("where", kernels::broadcast_shapes("where", c.shape(), a_in.shape()), b_in.shape());
  Tensor a, b;  // not a structured binding: the lambda below captures them (clang 14)
  std::tie(a, b) = kernels::promote("where", a_in, b_in);
  Tensor result = Tensor::empty(shape, a.dtype());
  kernels::dispatch_all(a.dtype(), [&](auto z) {
    using T = decltype(z);
    const bool* pc = c.data<bool>();
    const T *pa = a.data<T>(), *pb = b.data<T>();
    T* po = result.mutable_data<T>();
    kernels::broadcast_rows<3>(shape, {&c.shape(), &a.shape(), &b.shape()},
                               [&](int64_t o, auto off, auto st, int64_t len) {
                                 for (int64_t i = 0; i < len; ++i)
                                   po[o + i] = pc[off[0] + i * st[0]] ? pa[off[1] + i * st[1]] : pb[off[2] + i * st[2]];
                               });
  });
  return record("where", result, {Tensor(), a, b}, save_for_backward(c),
                [sa = a.shape(), sb = b.shape()](const BackwardContext& ctx) -> Grads {
                  const Tensor& c = ctx.saved(0);
                  Tensor zero = scalar(0.0, ctx.grad.dtype());
                  return {Tensor(), ctx.needs(1) ? sum_to(where(c, ctx.grad, zero), sa) : Tensor(),
                          ctx.needs(2) ? sum_to(where(c, zero, ctx.grad), sb) : Tensor()};
                });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, const Scalar& value) {
  kernels::check_defined("masked_fill", x);
  check_bool("masked_fill", "the mask", mask);
  if (kernels::broadcast_shapes("masked_fill", x.shape(), mask.shape()) != x.shape())
    throw ShapeError("tapegrad::masked_fill: the mask of shape " + to_string(mask.shape()) +
                     " does not broadcast to the input's shape " + to_string(x.shape()));
  Tensor result = Tensor::empty(x.shape(), x.dtype());
  kernels::dispatch_all(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T fill = value.to<T>();
    const T* px = x.data<T>();
    const bool* pm = mask.data<bool>();
    T* po = result.mutable_data<T>();
    kernels::broadcast_rows<2>(x.shape(), {&x.shape(), &mask.shape()}, [&](int64_t o, auto off, auto st, int64_t len) {
      for (int64_t i = 0; i < len; ++i) po[o + i] = pm[off[1] + i * st[1]] ? fill : px[off[0] + i * st[0]];
    });
  });
  return record("masked_fill", result, {x}, save_for_backward(mask), [](const BackwardContext& ctx) -> Grads {
    return {masked_fill(ctx.grad, ctx.saved(0), 0.0)};  // no gradient where the value was written
  });
}

}  // namespace tapegrad
