// Elementwise ops and their gradients, side by side. Binary ops broadcast; every backward
// reduces a broadcast gradient with sum_to (functions.hpp), the one place that undoes broadcasting.
#include <xtensor/xmath.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "autograd/ops/elementwise_kernels.hpp"
#include "autograd/simd.hpp"

namespace tapegrad {
namespace {

using kernels::Accepts;
using kernels::binary_kernel;
using kernels::dispatch;
using kernels::map_kernel;
using kernels::promote;
using kernels::scalar_kernel;

/// out = f(xview) with xtensor expressions: xsimd-vectorised transcendental functions.
template <class F>
Tensor xmap_kernel(const char* op, const Tensor& x, F f) {
  kernels::check_defined(op, x);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  dispatch(x.dtype(), op, [&](auto z) {
    using T = decltype(z);
    if (x.numel() == 1) {  // tiny tensors: skip the adaptor machinery
      out.mutable_data<T>()[0] = f(xt::xtensor_fixed<T, xt::xshape<1>>{x.data<T>()[0]})(0);
      return;
    }
    // Ranges start at multiples of parallel::kGrain, so xtensor splits each into the same SIMD body
    // and scalar tail as one pass over the whole (64-byte aligned) output: bitwise equal results.
    const T* px = x.data<T>();
    T* po = out.mutable_data<T>();
    parallel::parallel_for(0, x.numel(), parallel::kGrain, [&](int64_t lo, int64_t hi) {
      const std::array<size_t, 1> shape{static_cast<size_t>(hi - lo)};
      auto xo = xt::adapt(po + lo, shape[0], xt::no_ownership(), shape);
      xt::noalias(xo) = f(xt::adapt(px + lo, shape[0], xt::no_ownership(), shape));
    });
  });
  return out;
}

Tensor scalar_like(const Tensor& t, double v) { return scalar(v, t.dtype()); }
Tensor rsub(const Scalar& s, const Tensor& x);

}  // namespace

// ---- binary arithmetic --------------------------------------------------------------------------

Tensor add(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = promote("add", a_in, b_in);
  Tensor result = binary_kernel<Accepts::all>("add", a, b, [](auto x, auto y) { return x + y; });  // bool: or
  return record("add", result, {a, b}, [sa = a.shape(), sb = b.shape()](const BackwardContext& ctx) -> Grads {
    return {ctx.needs(0) ? sum_to(ctx.grad, sa) : Tensor(), ctx.needs(1) ? sum_to(ctx.grad, sb) : Tensor()};
  });
}

Tensor sub(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = promote("sub", a_in, b_in);
  if (a_in.dtype() == DType::b8 || b_in.dtype() == DType::b8)  // as PyTorch, even when the other is not bool
    throw DTypeError(std::string("tapegrad::sub: subtracting bool tensors (") + dtype_name(a_in.dtype()) + " " +
                     to_string(a.shape()) + " and " + dtype_name(b_in.dtype()) + " " + to_string(b.shape()) +
                     ") is not supported; to invert a mask use logical_not()");
  Tensor result = binary_kernel<Accepts::numeric>("sub", a, b, [](auto x, auto y) { return x - y; });
  return record("sub", result, {a, b}, [sa = a.shape(), sb = b.shape()](const BackwardContext& ctx) -> Grads {
    return {ctx.needs(0) ? sum_to(ctx.grad, sa) : Tensor(), ctx.needs(1) ? sum_to(neg(ctx.grad), sb) : Tensor()};
  });
}

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = promote("mul", a_in, b_in);
  Tensor result = binary_kernel<Accepts::all>("mul", a, b, [](auto x, auto y) { return x * y; });  // bool: and
  return record("mul", result, {a, b}, save_for_backward(a, b), [](const BackwardContext& ctx) -> Grads {
    const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
    return {ctx.needs(0) ? sum_to(mul(ctx.grad, b), a.shape()) : Tensor(),
            ctx.needs(1) ? sum_to(mul(ctx.grad, a), b.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = promote("div", a_in, b_in, /*floating=*/true);
  Tensor result = binary_kernel("div", a, b, [](auto x, auto y) { return x / y; });
  return record("div", result, {a, b}, save_for_backward(a, b), [](const BackwardContext& ctx) -> Grads {
    const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
    return {ctx.needs(0) ? sum_to(div(ctx.grad, b), a.shape()) : Tensor(),
            ctx.needs(1) ? sum_to(neg(div(mul(ctx.grad, a), mul(b, b))), b.shape()) : Tensor()};
  });
}

namespace {
/// Python's floor division and modulo (PyTorch's floor_divide and remainder): the quotient rounds
/// toward −inf and the remainder takes the divisor's sign. Integer divisors are checked for zero
/// before these run.
template <class T>
T floor_div(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == -1) return static_cast<T>(0ULL - static_cast<uint64_t>(a));  // wraps for INT64_MIN, as PyTorch
    T q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
  } else {
    if (b == 0) return a / b;
    T mod = std::fmod(a, b);
    T quot = (a - mod) / b;
    if (mod != 0 && ((b < 0) != (mod < 0))) quot -= T(1);
    if (quot == 0) return std::copysign(T(0), a / b);
    T floored = std::floor(quot);
    return quot - floored > T(0.5) ? floored + T(1) : floored;
  }
}
template <class T>
T floor_mod(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == -1) return 0;
    T r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
  } else {
    T mod = std::fmod(a, b);
    return (mod != 0 && ((b < 0) != (mod < 0))) ? mod + b : mod;
  }
}
void check_no_integer_zero(const char* op, const Tensor& a, const Tensor& b) {
  if (b.dtype() != DType::i64) return;
  const int64_t* p = b.data<int64_t>();
  if (std::find(p, p + b.numel(), int64_t(0)) != p + b.numel())
    throw std::invalid_argument(std::string("tapegrad::") + op + ": integer division by zero (int64 " +
                                to_string(a.shape()) + " by int64 " + to_string(b.shape()) + " holding a 0)");
}
}  // namespace

Tensor floor_divide(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = promote("floor_divide", a_in.detach(), b_in.detach());
  check_no_integer_zero("floor_divide", a, b);
  return binary_kernel<Accepts::numeric>("floor_divide", a, b, [](auto x, auto y) { return floor_div(x, y); });
}

Tensor floor_divide(const Tensor& a, const Scalar& s) {
  Tensor x = a.detach().to(result_type(a, s));
  if (x.dtype() == DType::i64 && s.to<int64_t>() == 0)
    throw std::invalid_argument("tapegrad::floor_divide: integer division by zero (int64 " + to_string(a.shape()) +
                                " by the scalar 0)");
  return scalar_kernel<Accepts::numeric>("floor_divide", x, s, [](auto v, auto d) { return floor_div(v, d); });
}

Tensor remainder(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = promote("remainder", a_in, b_in);
  check_no_integer_zero("remainder", a, b);
  Tensor result = binary_kernel<Accepts::numeric>("remainder", a, b, [](auto x, auto y) { return floor_mod(x, y); });
  // a − b·floor(a/b): d/da = 1, d/db = −floor(a/b) (floor is piecewise constant)
  return record("remainder", result, {a, b}, save_for_backward(a, b), [](const BackwardContext& ctx) -> Grads {
    const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
    return {ctx.needs(0) ? sum_to(ctx.grad, a.shape()) : Tensor(),
            ctx.needs(1) ? sum_to(neg(mul(ctx.grad, floor_divide(a, b))), b.shape()) : Tensor()};
  });
}

Tensor remainder(const Tensor& a, const Scalar& s) {
  Tensor x = a.to(result_type(a, s));
  if (x.dtype() == DType::i64 && s.to<int64_t>() == 0)
    throw std::invalid_argument("tapegrad::remainder: integer division by zero (int64 " + to_string(a.shape()) +
                                " by the scalar 0)");
  Tensor result = scalar_kernel<Accepts::numeric>("remainder", x, s, [](auto v, auto d) { return floor_mod(v, d); });
  return record("remainder_scalar", result, {x}, [](const BackwardContext& ctx) -> Grads { return {ctx.grad}; });
}

Tensor pow(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = promote("pow", a_in, b_in);
  Tensor result = binary_kernel("pow", a, b, [](auto x, auto y) { return std::pow(x, y); });
  return record(
      "pow", result, {a, b}, save_for_backward(a, b),
      [](const BackwardContext& ctx) -> Grads {
        const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
        Tensor gb;
        if (ctx.needs(1)) {
          // d(a^b)/db = a^b · ln a; where a = 0 and b ≥ 0 that is 0 · (−inf): take it as 0, as PyTorch does.
          Tensor zero = scalar_like(a, 0.0);
          Tensor at_zero = logical_and(eq(a, zero), ge(b, zero));
          gb = sum_to(mul(ctx.grad, where(at_zero, zero, mul(ctx.result, log(a)))), b.shape());
        }
        // d(a^b)/da = b · a^(b−1), and 0 where b = 0 (at a = 0 the formula is 0 · inf; PyTorch's rule)
        Tensor ga;
        if (ctx.needs(0)) {
          Tensor zero = scalar_like(a, 0.0);
          ga = sum_to(mul(ctx.grad, where(eq(b, zero), zero, mul(b, pow(a, sub(b, 1.0))))), a.shape());
        }
        return {ga, gb};
      },
      /*save_result=*/true);
}

namespace {
/// maximum/minimum: the gradient goes to the selected side; ties split it evenly.
/// A NaN on either side wins (the result is NaN whichever side it is on, as in PyTorch).
Tensor select_binary(const char* op, const Tensor& a_in, const Tensor& b_in, bool take_max) {
  auto [a, b] = promote(op, a_in, b_in);
  Tensor result =
      take_max ? binary_kernel<Accepts::all>(op, a, b, [](auto x, auto y) { return x >= y || x != x ? x : y; })
               : binary_kernel<Accepts::all>(op, a, b, [](auto x, auto y) { return x <= y || x != x ? x : y; });
  return record(op, result, {a, b}, save_for_backward(a, b), [take_max](const BackwardContext& ctx) -> Grads {
    const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
    // share of the gradient going to a: 1 where a wins (a NaN a included), 0.5 on ties, 0 where b wins
    Tensor wins = binary_kernel("select", a, b, [take_max](auto x, auto y) {
      using T = decltype(x);
      return x == y ? T(0.5) : ((take_max ? x > y : x < y) || x != x ? T(1) : T(0));
    });
    return {ctx.needs(0) ? sum_to(mul(ctx.grad, wins), a.shape()) : Tensor(),
            ctx.needs(1) ? sum_to(mul(ctx.grad, rsub(1.0, wins)), b.shape()) : Tensor()};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return select_binary("maximum", a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return select_binary("minimum", a, b, false); }

// ---- scalar forms -------------------------------------------------------------------------------

namespace {
/// As PyTorch: a − s and s − a refuse a bool tensor or a bool scalar.
void refuse_bool_subtraction(const char* op, const Tensor& a, const Scalar& s) {
  if (a.defined() && (a.dtype() == DType::b8 || s.kind() == DType::b8))
    throw DTypeError(std::string("tapegrad::") + op + ": subtracting with a bool tensor " + to_string(a.shape()) +
                     " or a bool scalar is not supported; to invert a mask use logical_not()");
}
}  // namespace

// A floating tensor keeps its dtype (the scalar is converted to it); an int64 or bool tensor is
// promoted first as result_type says (int64 · 2.5 is float32). Only floating results are recorded.
Tensor add(const Tensor& a, const Scalar& s) {
  Tensor x = a.to(result_type(a, s));
  Tensor result = scalar_kernel<Accepts::all>("add", x, s, [](auto v, auto c) { return v + c; });
  return record("add_scalar", result, {x}, [](const BackwardContext& ctx) -> Grads { return {ctx.grad}; });
}
Tensor sub(const Tensor& a, const Scalar& s) {
  refuse_bool_subtraction("sub", a, s);
  Tensor x = a.to(result_type(a, s));
  Tensor result = scalar_kernel<Accepts::numeric>("sub", x, s, [](auto v, auto c) { return v - c; });
  return record("sub_scalar", result, {x}, [](const BackwardContext& ctx) -> Grads { return {ctx.grad}; });
}
Tensor mul(const Tensor& a, const Scalar& s) {
  Tensor x = a.to(result_type(a, s));
  Tensor result = scalar_kernel<Accepts::all>("mul", x, s, [](auto v, auto c) { return v * c; });
  return record("mul_scalar", result, {x}, [s](const BackwardContext& ctx) -> Grads { return {mul(ctx.grad, s)}; });
}
Tensor div(const Tensor& a, const Scalar& s) {
  if (s.to_double() == 0)
    throw std::invalid_argument("tapegrad::div: division by the scalar 0 (tensor of shape " + to_string(a.shape()) + ")");
  return mul(is_floating(a.dtype()) ? a : a.to(DType::f32), 1.0 / s.to_double());
}
namespace {
/// s − x
Tensor rsub(const Scalar& s, const Tensor& a) {
  refuse_bool_subtraction("rsub", a, s);
  Tensor x = a.to(result_type(a, s));
  Tensor result = scalar_kernel<Accepts::numeric>("rsub", x, s, [](auto v, auto c) { return c - v; });
  return record("rsub", result, {x}, [](const BackwardContext& ctx) -> Grads { return {neg(ctx.grad)}; });
}
}  // namespace

Tensor pow(const Tensor& a, double p) {
  Tensor result = p == 2.0 ? map_kernel("pow", a, [](auto x) { return x * x; })
                           : map_kernel("pow", a, [p](auto x) { return std::pow(x, static_cast<decltype(x)>(p)); });
  return record("pow_scalar", result, {a}, save_for_backward(a), [p](const BackwardContext& ctx) -> Grads {
    const Tensor& a = ctx.saved(0);
    if (p == 2.0) return {mul(ctx.grad, mul(a, 2.0))};
    if (p == 0.0) return {zeros_like(ctx.grad)};  // a constant; not 0 · a^−1 (NaN at a = 0)
    return {mul(ctx.grad, mul(pow(a, p - 1.0), p))};
  });
}

// ---- unary --------------------------------------------------------------------------------------

Tensor neg(const Tensor& x) {
  if (x.defined() && x.dtype() == DType::b8)
    throw DTypeError("tapegrad::neg: negating a bool tensor " + to_string(x.shape()) +
                     " is not supported; to invert a mask use logical_not()");
  Tensor result = map_kernel<Accepts::numeric>("neg", x, [](auto v) { return -v; });
  return record("neg", result, {x}, [](const BackwardContext& ctx) -> Grads { return {neg(ctx.grad)}; });
}

Tensor exp(const Tensor& x) {
  Tensor result = xmap_kernel("exp", x, [](auto&& e) { return xt::exp(e); });
  return record(
      "exp", result, {x}, [](const BackwardContext& ctx) -> Grads { return {mul(ctx.grad, ctx.result)}; }, true);
}

Tensor log(const Tensor& x) {
  Tensor result = xmap_kernel("log", x, [](auto&& e) { return xt::log(e); });
  return record("log", result, {x}, save_for_backward(x),
                [](const BackwardContext& ctx) -> Grads { return {div(ctx.grad, ctx.saved(0))}; });
}

Tensor sqrt(const Tensor& x) {
  Tensor result = xmap_kernel("sqrt", x, [](auto&& e) { return xt::sqrt(e); });
  return record(
      "sqrt", result, {x},
      [](const BackwardContext& ctx) -> Grads { return {div(ctx.grad, mul(ctx.result, 2.0))}; }, true);
}

Tensor sign(const Tensor& x) {
  return map_kernel<Accepts::numeric>("sign", x, [](auto v) {
    using T = decltype(v);
    return v > T(0) ? T(1) : (v < T(0) ? T(-1) : T(0));
  });
}

Tensor abs(const Tensor& x) {
  Tensor result = map_kernel<Accepts::numeric>("abs", x, [](auto v) { return v < decltype(v)(0) ? -v : v; });
  return record("abs", result, {x}, save_for_backward(x),
                [](const BackwardContext& ctx) -> Grads { return {mul(ctx.grad, sign(ctx.saved(0)))}; });
}

Tensor sin(const Tensor& x) {
  Tensor result = xmap_kernel("sin", x, [](auto&& e) { return xt::sin(e); });
  return record("sin", result, {x}, save_for_backward(x),
                [](const BackwardContext& ctx) -> Grads { return {mul(ctx.grad, cos(ctx.saved(0)))}; });
}

Tensor cos(const Tensor& x) {
  Tensor result = xmap_kernel("cos", x, [](auto&& e) { return xt::cos(e); });
  return record("cos", result, {x}, save_for_backward(x),
                [](const BackwardContext& ctx) -> Grads { return {neg(mul(ctx.grad, sin(ctx.saved(0))))}; });
}

Tensor tanh(const Tensor& x) {
  Tensor result = xmap_kernel("tanh", x, [](auto&& e) { return xt::tanh(e); });
  return record(
      "tanh", result, {x},
      [](const BackwardContext& ctx) -> Grads { return {mul(ctx.grad, rsub(1.0, mul(ctx.result, ctx.result)))}; },
      true);
}

Tensor sigmoid(const Tensor& x) {
  Tensor result = xmap_kernel("sigmoid", x, [](auto&& e) {
    using T = typename std::decay_t<decltype(e)>::value_type;
    return T(1) / (T(1) + xt::exp(-e));
  });
  return record(
      "sigmoid", result, {x},
      [](const BackwardContext& ctx) -> Grads {
        return {mul(ctx.grad, mul(ctx.result, rsub(1.0, ctx.result)))};
      },
      true);
}

Tensor erf(const Tensor& x) {
  Tensor result = xmap_kernel("erf", x, [](auto&& e) { return xt::erf(e); });
  return record("erf", result, {x}, save_for_backward(x), [](const BackwardContext& ctx) -> Grads {
    const Tensor& x = ctx.saved(0);
    return {mul(ctx.grad, mul(exp(neg(mul(x, x))), 2.0 / std::sqrt(M_PI)))};
  });
}

namespace {
/// grad where result is not ≤ 0 (positive or NaN: PyTorch's threshold_backward), else 0, in one
/// pass: relu's backward. Linear in grad, so its own backward is itself; the mask is piecewise
/// constant (no gradient for result).
Tensor relu_backward(const Tensor& grad, const Tensor& result) {
  Tensor out = binary_kernel("relu_backward", grad, result, [](auto g, auto r) { return r <= decltype(r)(0) ? decltype(g)(0) : g; });
  return record("relu_backward", out, {grad}, save_for_backward(result), [](const BackwardContext& ctx) -> Grads {
    return {relu_backward(ctx.grad, ctx.saved(0))};
  });
}
}  // namespace

Tensor relu(const Tensor& x) {
  // NaN stays NaN (PyTorch's relu): only values ≤ 0 become 0
  Tensor result = map_kernel("relu", x, [](auto v) { return v <= decltype(v)(0) ? decltype(v)(0) : v; });
  return record(
      "relu", result, {x}, [](const BackwardContext& ctx) -> Grads { return {relu_backward(ctx.grad, ctx.result)}; },
      true);
}

Tensor leaky_relu(const Tensor& x, double slope) {
  Tensor result = map_kernel("leaky_relu", x, [slope](auto v) {
    using T = decltype(v);
    return v > T(0) ? v : v * static_cast<T>(slope);
  });
  return record("leaky_relu", result, {x}, save_for_backward(x), [slope](const BackwardContext& ctx) -> Grads {
    const Tensor& x = ctx.saved(0);
    Tensor factor = map_kernel("leaky_relu_backward", x, [slope](auto v) {
      using T = decltype(v);
      return v > T(0) ? T(1) : static_cast<T>(slope);
    });
    return {mul(ctx.grad, factor)};
  });
}

namespace {
using simd::kGeluC;
using simd::kGeluK;
using simd::kInvSqrt2Pi;

/// out[i] = kernel(in0 + lo, in1 + lo, ..., out + lo, hi − lo) over parallel ranges, for same-shape
/// tensors of one dtype: gelu's forward and backward through simd.hpp's run-time dispatched kernels
/// (one pass, one transcendental per element where xtensor's lazy expressions would evaluate a
/// shared subterm twice). Ranges start at multiples of parallel::kGrain (a multiple of every
/// vector width): the same batches as one pass.
template <size_t K, class F>
Tensor simd_map(const char* op, const std::array<const Tensor*, K>& in, F kernel) {
  for (const Tensor* t : in) {
    kernels::check_defined(op, *t);
    kernels::check_same_dtype(op, *in[0], *t);
    if (t->shape() != in[0]->shape())
      throw ShapeError(std::string("tapegrad::") + op + ": shapes " + to_string(in[0]->shape()) + " and " +
                       to_string(t->shape()) + " differ");
  }
  Tensor out = Tensor::empty(in[0]->shape(), in[0]->dtype());
  dispatch(in[0]->dtype(), op, [&](auto z) {
    using T = decltype(z);
    std::array<const T*, K> p;
    for (size_t j = 0; j < K; ++j) p[j] = in[j]->template data<T>();
    T* po = out.mutable_data<T>();
    parallel::parallel_for(0, out.numel(), parallel::kGrain, [&](int64_t lo, int64_t hi) {
      [&]<size_t... J>(std::index_sequence<J...>) { kernel((p[J] + lo)..., po + lo, hi - lo); }(std::make_index_sequence<K>{});
    });
  });
  return out;
}

/// gelu''(x) in differentiable ops: the backward of gelu_backward with respect to x.
Tensor gelu_second_derivative(const Tensor& x, GeluApproximate approximate) {
  Tensor x2 = mul(x, x);
  if (approximate == GeluApproximate::none)  // φ(x)·(2 − x²)
    return mul(mul(exp(mul(x2, -0.5)), kInvSqrt2Pi), rsub(2.0, x2));
  // (1 − t²)·(u' + 3kc·x² − x·t·u'²),  u' = k(1 + 3c·x²)
  Tensor t = tanh(mul(add(x, mul(mul(x2, x), kGeluC)), kGeluK));
  Tensor du = mul(add(mul(x2, 3 * kGeluC), 1.0), kGeluK);
  return mul(rsub(1.0, mul(t, t)), sub(add(du, mul(x2, 3 * kGeluK * kGeluC)), mul(mul(x, t), mul(du, du))));
}

/// grad · gelu'(x) in one pass: gelu's backward (`result` is gelu's output: both forms read its
/// x·σ or x·Φ off it instead of a second transcendental). Recorded, with a differentiable backward
/// (linear in grad; grad·gelu''(x) for x), so gelu has gradients of every order.
Tensor gelu_backward(const Tensor& grad, const Tensor& x, const Tensor& result, GeluApproximate approximate) {
  const bool tanh_form = approximate == GeluApproximate::tanh;
  Tensor out = simd_map<3>("gelu_backward", {&grad, &x, &result},
                           [tanh_form](const auto* g, const auto* v, const auto* y, auto* dx, int64_t n) {
    simd::gelu_backward(g, v, y, dx, n, tanh_form);
  });
  return record("gelu_backward", out, {grad, x}, save_for_backward(grad, x, result),
                [approximate](const BackwardContext& ctx) -> Grads {
    const Tensor &grad = ctx.saved(0), &x = ctx.saved(1), &result = ctx.saved(2);
    return {ctx.needs(0) ? gelu_backward(ctx.grad, x, result, approximate) : Tensor(),
            ctx.needs(1) ? mul(mul(ctx.grad, grad), gelu_second_derivative(x, approximate)) : Tensor()};
  });
}
}  // namespace

Tensor gelu(const Tensor& x, GeluApproximate approximate) {
  const bool tanh_form = approximate == GeluApproximate::tanh;
  Tensor result = simd_map<1>("gelu", {&x}, [tanh_form](const auto* v, auto* y, int64_t n) {
    simd::gelu(v, y, n, tanh_form);
  });
  return record(
      tanh_form ? "gelu_tanh" : "gelu", result, {x}, save_for_backward(x),
      [approximate](const BackwardContext& ctx) -> Grads {
        return {gelu_backward(ctx.grad, ctx.saved(0), ctx.result, approximate)};
      },
      /*save_result=*/true);
}

Tensor softplus(const Tensor& x, double beta, double threshold) {
  if (!(beta > 0)) throw std::invalid_argument("tapegrad::softplus: beta must be > 0, got " + std::to_string(beta));
  Tensor result = map_kernel("softplus", x, [beta, threshold](auto v) {
    using T = decltype(v);
    T bx = static_cast<T>(beta) * v;
    return bx > static_cast<T>(threshold) ? v : std::log1p(std::exp(bx)) / static_cast<T>(beta);
  });
  return record("softplus", result, {x}, save_for_backward(x), [beta, threshold](const BackwardContext& ctx) -> Grads {
    const Tensor& x = ctx.saved(0);
    Tensor linear = gt(mul(x, beta), threshold);
    return {mul(ctx.grad, where(linear, ones_like(x), sigmoid(mul(x, beta))))};
  });
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  if (!(lo <= hi))
    throw std::invalid_argument("tapegrad::clamp: needs min <= max, got min=" + std::to_string(lo) +
                                " max=" + std::to_string(hi));
  Tensor result = map_kernel("clamp", x, [lo, hi](auto v) {
    using T = decltype(v);
    return v < static_cast<T>(lo) ? static_cast<T>(lo) : (v > static_cast<T>(hi) ? static_cast<T>(hi) : v);
  });
  return record("clamp", result, {x}, save_for_backward(x), [lo, hi](const BackwardContext& ctx) -> Grads {
    const Tensor& x = ctx.saved(0);
    Tensor inside = map_kernel("clamp_backward", x, [lo, hi](auto v) {
      using T = decltype(v);
      return (v >= static_cast<T>(lo) && v <= static_cast<T>(hi)) ? T(1) : T(0);
    });
    return {mul(ctx.grad, inside)};
  });
}

// ---- operators ----------------------------------------------------------------------------------

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, const Scalar& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Scalar& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Scalar& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Scalar& b) { return div(a, b); }
Tensor operator+(const Scalar& a, const Tensor& b) { return add(b, a); }
Tensor operator-(const Scalar& a, const Tensor& b) { return rsub(a, b); }
Tensor operator*(const Scalar& a, const Tensor& b) { return mul(b, a); }
Tensor operator/(const Scalar& a, const Tensor& b) {
  return mul(pow(is_floating(b.dtype()) ? b : b.to(DType::f32), -1.0), a);
}

}  // namespace tapegrad
