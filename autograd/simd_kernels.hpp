#pragma once
/// \file simd_kernels.hpp
/// The bodies of tapegrad's hand-vectorised kernels, written once as templates on the xsimd
/// architecture A (`xsimd::batch<T, A>`). Internal: callers use the dispatching entry points of
/// autograd/simd.hpp, which pick an instantiation at run time (cpu.hpp's kernel_isa()).
///
/// Each instantiation is compiled in a translation unit whose flags allow A: the baseline one
/// (xsimd::default_arch under TAPEGRAD_ARCH_FLAGS) in simd.cpp, `xsimd::avx512f` in
/// simd_avx512.cpp (-mavx512f -mavx512dq), `xsimd::fma3<xsimd::avx2>` in simd_avx2.cpp (only in builds whose
/// baseline lacks AVX2). Why that is safe (the one-definition rule): every function these
/// instantiations compile carries A in its mangled name (Kernels<A, T>'s members, xsimd's
/// kernel::*<A>, the functors' operator()<batch<T, A>>), so the linker never swaps a wide copy in
/// for a baseline caller. Nothing else is defined here, and this header includes only xsimd and
/// the standard library (no xtensor, whose types depend on the arch flags).
/// scripts/check_isa_symbols.sh (ctest "isa: ...") checks the built library for it.
#ifndef TAPEGRAD_SIMD_PATHS
#error "autograd/simd_kernels.hpp: include it only from the files tapegrad_library (cmake/TapegradDeps.cmake) gives TAPEGRAD_SIMD_PATHS, or its kernels dispatch to the baseline only"
#endif
#include <xsimd/xsimd.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "autograd/simd.hpp"

namespace tapegrad::simd {

/// Every dispatched kernel for one architecture A and value type T (float or double). Members are
/// defined out of class (not inline), so that `extern template` keeps a translation unit compiled
/// for a narrower arch from instantiating them.
template <class A, class T>
struct Kernels {
  /// max(x[0..n)), −∞ for n = 0; a NaN may or may not win.
  static T row_max(const T* x, int64_t n);
  /// m = max(in) (0 when not finite), out[k] = exp(in[k] − m) unless out is null; returns Σ exp(in[k] − m).
  static T exp_shifted_row(const T* in, T* out, int64_t n, T& m);
  /// x ← exp(x − shift) in place; returns Σ exp(x − shift).
  static T exp_shift_row(T* x, int64_t n, T shift);
  /// dx = y·(g − Σ g·y), or with log_form dx = g − exp(y)·Σ g, over one row.
  static void softmax_backward_row(const T* y, const T* g, T* dx, int64_t n, bool log_form);
  /// {μ, Σ (x − μ)²} over one row (μ = 0 unless centered; two passes when centered).
  static std::pair<T, T> row_moments(const T* x, int64_t n, bool centered);
  /// {Σ a (0 unless centered), Σ a·(x − μ)} over one row.
  static std::pair<T, T> row_sums(const T* a, const T* x, T mu, int64_t n, bool centered);
  /// y = gelu(x) over [0, n): the exact form x·Φ(x), or with tanh_form x·σ(2u).
  static void gelu(const T* x, T* y, int64_t n, bool tanh_form);
  /// dx = g·gelu'(x) over [0, n); both forms read gelu's output y.
  static void gelu_backward(const T* g, const T* x, const T* y, T* dx, int64_t n, bool tanh_form);
  /// 2×2, stride-2 max pooling of `planes` planes [h, w]: src's values at x's taps (simd.hpp's
  /// max_pool_2x2).
  static void max_pool_2x2(const T* x, const T* src, int64_t planes, int64_t h, int64_t w, T* out);
  /// Its gradient: g onto x's taps, 0 elsewhere (simd.hpp's max_pool_2x2_backward).
  static void max_pool_2x2_backward(const T* x, const T* g, int64_t planes, int64_t h, int64_t w, T* dx);
};

namespace detail {

inline constexpr double kSqrt1_2 = 0.70710678118654752440;  // 1/√2

/// The tanh form through the logistic function, ½(1 + tanh u) = σ(2u) = 1/(1 + e^(−2u)) with
/// u = k(x + c·x³): one exp and one division per element instead of xsimd's tanh, whose two range
/// branches both run on a mixed batch. gelu_tanh_exp returns e^(−2u) (the forward divides x by
/// 1 + e^(−2u) once), gelu_tanh_sigma σ(2u).
template <class B>
B gelu_tanh_exp(const B& x) {
  using T = typename B::value_type;
  return xsimd::exp(T(-2 * kGeluK) * (x + T(kGeluC) * x * x * x));
}
template <class B>
B gelu_tanh_sigma(const B& x) {
  using T = typename B::value_type;
  return T(1) / (T(1) + gelu_tanh_exp(x));
}

/// Whether a batch's σ (the tanh form's) or Φ (the exact form's) may be read off gelu's output as
/// y/x: every |x| in [1e-3, 1e30] (near 0 the quotient loses digits; far out x·σ may round to 0 or
/// overflow). Otherwise the batch evaluates its transcendental again.
template <class B>
auto gelu_quotient_usable(const B& x) {
  using T = typename B::value_type;
  const B ax = xsimd::abs(x);
  return (ax > B(T(1e-3))) && (ax < B(T(1e30)));
}

/// Applies f to K input batches lane by lane over [0, n), the tail through one zero-padded batch
/// (so every element goes through the same vector code).
template <class A, size_t K, class T, class F>
void map_range(const T* const (&in)[K], T* out, int64_t n, F f) {
  using B = xsimd::batch<T, A>;
  constexpr int64_t W = static_cast<int64_t>(B::size);
  auto apply = [&](auto load) {
    return [&]<size_t... J>(std::index_sequence<J...>) { return f(load(J)...); }(std::make_index_sequence<K>{});
  };
  int64_t i = 0;
  for (; i + W <= n; i += W) apply([&](size_t j) { return B::load_unaligned(in[j] + i); }).store_unaligned(out + i);
  if (i < n) {
    T buf[K][W] = {}, res[W];
    for (size_t j = 0; j < K; ++j)
      for (int64_t l = 0; l < n - i; ++l) buf[j][l] = in[j][i + l];
    apply([&](size_t j) { return B::load_unaligned(buf[j]); }).store_unaligned(res);
    for (int64_t l = 0; l < n - i; ++l) out[i + l] = res[l];
  }
}

/// gelu of a batch: exact ½x(1 + erf(x/√2)) or tanh form x·σ(2u).
struct GeluForward {
  bool tanh_form;  ///< the tanh approximation instead of erf
  template <class B>
  B operator()(const B& x) const {
    using T = typename B::value_type;
    if (!tanh_form) return T(0.5) * x * (T(1) + xsimd::erf(x * T(kSqrt1_2)));
    return x / (T(1) + gelu_tanh_exp(x));
  }
};

/// g·gelu'(x) of the tanh form: with s = σ(2u), d/dx [x·s] = s + x·s(1 − s)·2u', u' = k(1 + 3c·x²);
/// s read off the forward's result y = x·s as y/x (no second exp) where gelu_quotient_usable.
struct GeluTanhBackward {
  template <class B>
  B operator()(const B& g, const B& x, const B& y) const {
    using T = typename B::value_type;
    const auto usable = gelu_quotient_usable(x);
    B s = y / x;
    if (!xsimd::all(usable)) s = xsimd::select(usable, s, gelu_tanh_sigma(x));
    return g * (s + x * (s - s * s) * (T(2 * kGeluK) * (T(1) + T(3 * kGeluC) * x * x)));
  }
};

/// g·gelu'(x) = g·(Φ(x) + x·φ(x)) of the exact form, Φ(x) read off the forward's result y = x·Φ(x)
/// as y/x (no second erf) except in batches holding an x near 0 or beyond ±1e30, where erf is
/// evaluated for the whole batch.
struct GeluExactBackward {
  template <class B>
  B operator()(const B& g, const B& x, const B& y) const {
    using T = typename B::value_type;
    const auto usable = gelu_quotient_usable(x);
    B cdf = y / x;
    if (!xsimd::all(usable)) cdf = xsimd::select(usable, cdf, T(0.5) * (T(1) + xsimd::erf(x * T(kSqrt1_2))));
    return g * (cdf + x * xsimd::exp(T(-0.5) * x * x) * T(kInvSqrt2Pi));
  }
};

/// Unsigned lanes as wide as T's: the index batches of swizzles on batch<T, A>.
template <class T, class A>
using LaneIndex = xsimd::batch<std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>, A>;

/// Lane j of the result is lane j ^ 1 of the input: each even lane meets its odd neighbour.
struct SwapPairs {
  static constexpr unsigned get(unsigned index, unsigned /*size*/) { return index ^ 1u; }
};

/// Lane j of the result is lane 2j of the input for j < size/2 (then the odd lanes): the even
/// lanes, where a batch of 2×2 windows keeps its answers, packed at the front.
struct EvenFirst {
  static constexpr unsigned get(unsigned index, unsigned size) {
    return index < size / 2 ? 2 * index : 2 * (index - size / 2) + 1;
  }
};
/// Lane j of the result is lane j / 2 of the input: a window's value for both lanes of its pair.
struct DupHalves {
  static constexpr unsigned get(unsigned index, unsigned /*size*/) { return index / 2; }
};
/// Lane j of the result is lane j & ~1 of the input: an even lane's answer for its odd neighbour too.
struct DupEven {
  static constexpr unsigned get(unsigned index, unsigned /*size*/) { return index & ~1u; }
};

/// Whether x replaces v as a window's first maximum: x is larger, or x is the first NaN (a NaN
/// already kept stays). Lane-wise on batches (through xsimd::isnan: xsimd's != on AVX batches is
/// an ordered compare, false for NaN), or on scalars.
template <class T, class A>
xsimd::batch_bool<T, A> replaces(const xsimd::batch<T, A>& x, const xsimd::batch<T, A>& v) {
  return (x > v) || (xsimd::isnan(x) && !xsimd::isnan(v));
}
template <class T>
bool replaces(T x, T v) {
  return x > v || (std::isnan(x) && !std::isnan(v));
}

}  // namespace detail

template <class A, class T>
T Kernels<A, T>::row_max(const T* x, int64_t n) {
  using B = xsimd::batch<T, A>;
  constexpr int64_t W = static_cast<int64_t>(B::size);
  T m = -std::numeric_limits<T>::infinity();
  int64_t c = 0;
  if (n >= W) {
    B vm = B::load_unaligned(x);
    for (c = W; c + W <= n; c += W) vm = xsimd::max(vm, B::load_unaligned(x + c));
    T lanes[W];
    vm.store_unaligned(lanes);
    for (int64_t l = 0; l < W; ++l) m = lanes[l] > m ? lanes[l] : m;
  }
  for (; c < n; ++c) m = x[c] > m ? x[c] : m;
  return m;
}

template <class A, class T>
T Kernels<A, T>::exp_shifted_row(const T* in, T* out, int64_t n, T& m) {
  using B = xsimd::batch<T, A>;
  constexpr int64_t W = static_cast<int64_t>(B::size);
  m = row_max(in, n);
  if (!std::isfinite(m)) m = T(0);
  B sum(T(0));
  const B vm(m);
  int64_t k = 0;
  for (; k + W <= n; k += W) {
    B e = xsimd::exp(B::load_unaligned(in + k) - vm);
    if (out) e.store_unaligned(out + k);
    sum += e;
  }
  T total = xsimd::hadd(sum);
  for (; k < n; ++k) {
    T e = std::exp(in[k] - m);
    if (out) out[k] = e;
    total += e;
  }
  return total;
}

template <class A, class T>
T Kernels<A, T>::exp_shift_row(T* x, int64_t n, T shift) {
  using B = xsimd::batch<T, A>;
  constexpr int64_t W = static_cast<int64_t>(B::size);
  const B vs(shift);
  B acc(T(0));
  int64_t c = 0;
  for (; c + W <= n; c += W) {
    const B e = xsimd::exp(B::load_unaligned(x + c) - vs);
    e.store_unaligned(x + c);
    acc += e;
  }
  T sum = xsimd::hadd(acc);
  for (; c < n; ++c) sum += x[c] = std::exp(x[c] - shift);
  return sum;
}

template <class A, class T>
void Kernels<A, T>::softmax_backward_row(const T* y, const T* g, T* dx, int64_t n, bool log_form) {
  using B = xsimd::batch<T, A>;
  constexpr int64_t W = static_cast<int64_t>(B::size);
  B acc(T(0));
  int64_t k = 0;
  for (; k + W <= n; k += W) {
    const B gk = B::load_unaligned(g + k);
    acc += log_form ? gk : gk * B::load_unaligned(y + k);
  }
  T s = xsimd::hadd(acc);
  for (; k < n; ++k) s += log_form ? g[k] : g[k] * y[k];
  const B vs(s);
  for (k = 0; k + W <= n; k += W) {
    const B yk = B::load_unaligned(y + k), gk = B::load_unaligned(g + k);
    (log_form ? gk - xsimd::exp(yk) * vs : yk * (gk - vs)).store_unaligned(dx + k);
  }
  for (; k < n; ++k) dx[k] = log_form ? g[k] - std::exp(y[k]) * s : y[k] * (g[k] - s);
}

template <class A, class T>
std::pair<T, T> Kernels<A, T>::row_moments(const T* x, int64_t n, bool centered) {
  using B = xsimd::batch<T, A>;
  constexpr int64_t W = static_cast<int64_t>(B::size);
  auto body = [&](auto centered_) -> std::pair<T, T> {  // centered as a compile-time constant
    T mu = 0;
    if constexpr (decltype(centered_)::value) {
      B s0(T(0)), s1(T(0));
      int64_t k = 0;
      for (; k + 2 * W <= n; k += 2 * W) {
        s0 += B::load_unaligned(x + k);
        s1 += B::load_unaligned(x + k + W);
      }
      T sum = xsimd::hadd(s0 + s1);
      for (; k < n; ++k) sum += x[k];
      mu = sum / static_cast<T>(n);
    }
    const B m(mu);
    B q0(T(0)), q1(T(0));
    int64_t k = 0;
    for (; k + 2 * W <= n; k += 2 * W) {
      const B d0 = B::load_unaligned(x + k) - m, d1 = B::load_unaligned(x + k + W) - m;
      q0 = xsimd::fma(d0, d0, q0);
      q1 = xsimd::fma(d1, d1, q1);
    }
    T sq = xsimd::hadd(q0 + q1);
    for (; k < n; ++k) sq += (x[k] - mu) * (x[k] - mu);
    return {mu, sq};
  };
  return centered ? body(std::true_type{}) : body(std::false_type{});
}

template <class A, class T>
std::pair<T, T> Kernels<A, T>::row_sums(const T* a, const T* x, T mu, int64_t n, bool centered) {
  using B = xsimd::batch<T, A>;
  constexpr int64_t W = static_cast<int64_t>(B::size);
  auto body = [&](auto centered_) -> std::pair<T, T> {  // centered as a compile-time constant
    constexpr bool c = decltype(centered_)::value;
    const B m(mu);
    B s0(T(0)), s1(T(0)), d0(T(0)), d1(T(0));
    int64_t k = 0;
    for (; k + 2 * W <= n; k += 2 * W) {
      const B a0 = B::load_unaligned(a + k), a1 = B::load_unaligned(a + k + W);
      if constexpr (c) {
        s0 += a0;
        s1 += a1;
      }
      d0 = xsimd::fma(a0, B::load_unaligned(x + k) - m, d0);
      d1 = xsimd::fma(a1, B::load_unaligned(x + k + W) - m, d1);
    }
    T sum = c ? xsimd::hadd(s0 + s1) : T(0), dot = xsimd::hadd(d0 + d1);
    for (; k < n; ++k) {
      if constexpr (c) sum += a[k];
      dot += a[k] * (x[k] - mu);
    }
    return {sum, dot};
  };
  return centered ? body(std::true_type{}) : body(std::false_type{});
}

template <class A, class T>
void Kernels<A, T>::gelu(const T* x, T* y, int64_t n, bool tanh_form) {
  const T* const in[1] = {x};
  detail::map_range<A>(in, y, n, detail::GeluForward{tanh_form});
}

template <class A, class T>
void Kernels<A, T>::gelu_backward(const T* g, const T* x, const T* y, T* dx, int64_t n, bool tanh_form) {
  const T* const in[3] = {g, x, y};
  if (tanh_form) detail::map_range<A>(in, dx, n, detail::GeluTanhBackward{});
  else detail::map_range<A>(in, dx, n, detail::GeluExactBackward{});
}

namespace detail {

/// The 2×2, stride-2 windows of a plane [h, w] (rows of w values) of x, size/2 windows per batch
/// of a row pair. visit(p, q, code, value) gets, for the windows of row pair p from column pair q
/// on, batches whose even lanes hold each window's winning tap, numbered 0–3 in scan order
/// (row-major), and its value: the first maximum, the first NaN counting as the maximum. Each
/// row's pair meets in the even lanes (the left tap unless the right one replaces it), then the
/// lower row's winner replaces the upper's only if it is larger or the first NaN; batches without
/// a NaN compare with `>` alone (the same answers). A row shorter than a batch, and a last odd row
/// or column, are the caller's (scalar).
template <class A, class T, class Visit>
void visit_windows_2x2(const T* x, int64_t h, int64_t w, Visit visit) {
  using B = xsimd::batch<T, A>;
  using U = LaneIndex<T, A>;
  constexpr int64_t P = static_cast<int64_t>(B::size) / 2;
  constexpr auto swap = xsimd::make_batch_constant<U, SwapPairs>();
  const int64_t oh = h / 2, ow = w / 2;
  if (ow < P) return;
  for (int64_t p = 0; p < oh; ++p) {
    const T* r0 = x + 2 * p * w;
    const T* r1 = r0 + w;
    auto windows = [&](int64_t q) {
      const B a = B::load_unaligned(r0 + 2 * q), b = B::load_unaligned(r1 + 2 * q);
      const B as = xsimd::swizzle(a, swap), bs = xsimd::swizzle(b, swap);
      // the meetings, with `wins(u, v)`: whether u replaces v
      auto meet = [&](auto wins) {
        const auto ma = wins(as, a), mb = wins(bs, b);
        const B va = xsimd::select(ma, as, a), vb = xsimd::select(mb, bs, b);
        const auto mv = wins(vb, va);
        visit(p, q, xsimd::select(mv, xsimd::select(mb, B(T(3)), B(T(2))), xsimd::select(ma, B(T(1)), B(T(0)))),
              xsimd::select(mv, vb, va));
      };
      if (xsimd::any(xsimd::isnan(a + b)))  // a NaN (or +∞ beside −∞): the exact rule
        meet([](const B& u, const B& v) { return replaces(u, v); });
      else
        meet([](const B& u, const B& v) { return u > v; });
    };
    int64_t q = 0;
    for (; q + P <= ow; q += P) windows(q);
    if (q < ow) windows(ow - P);  // the last P windows again (the same answers), instead of a scalar tail
  }
}

/// The winning tap (0–3, scan order) of the window at row pair p, column pair q: the scalar form
/// of visit_windows_2x2's rule. Templated on the arch too, so that each instantiation is its own
/// symbol (the AVX-512 file's copy is never linked to a baseline caller).
template <class A, class T>
int first_max_tap_2x2(const T* x, int64_t w, int64_t p, int64_t q) {
  const T* a = x + 2 * p * w + 2 * q;
  const T* b = a + w;
  const bool ma = replaces(a[1], a[0]), mb = replaces(b[1], b[0]);
  return replaces(mb ? b[1] : b[0], ma ? a[1] : a[0]) ? 2 + mb : ma;
}

}  // namespace detail

template <class A, class T>
void Kernels<A, T>::max_pool_2x2(const T* x, const T* src, int64_t planes, int64_t h, int64_t w, T* out) {
  using B = xsimd::batch<T, A>;
  using U = detail::LaneIndex<T, A>;
  constexpr int64_t P = static_cast<int64_t>(B::size) / 2;
  constexpr auto swap = xsimd::make_batch_constant<U, detail::SwapPairs>();
  constexpr auto even_first = xsimd::make_batch_constant<U, detail::EvenFirst>();
  const int64_t oh = h / 2, ow = w / 2;
  for (int64_t plane = 0; plane < planes; ++plane, x += h * w, src += h * w, out += oh * ow) {
    detail::visit_windows_2x2<A>(x, h, w, [&](int64_t p, int64_t q, const B& code, B value) {
      if (src != x) {  // src's value at the tap: the upper row's unless the lower row won, the right one if it won
        const T* s0 = src + 2 * p * w + 2 * q;
        const B a = B::load_unaligned(s0), b = B::load_unaligned(s0 + w);
        const B top = xsimd::select(code == B(T(1)), xsimd::swizzle(a, swap), a);
        const B bottom = xsimd::select(code == B(T(3)), xsimd::swizzle(b, swap), b);
        value = xsimd::select(code >= B(T(2)), bottom, top);
      }
      alignas(64) T packed[B::size];
      xsimd::swizzle(value, even_first).store_aligned(packed);
      std::copy_n(packed, P, out + p * ow + q);
    });
    if (ow < P)  // rows shorter than a batch: one window at a time
      for (int64_t p = 0; p < oh; ++p)
        for (int64_t q = 0; q < ow; ++q) {
          const int t = detail::first_max_tap_2x2<A>(x, w, p, q);
          out[p * ow + q] = src[(2 * p + t / 2) * w + 2 * q + t % 2];
        }
  }
}

template <class A, class T>
void Kernels<A, T>::max_pool_2x2_backward(const T* x, const T* g, int64_t planes, int64_t h, int64_t w, T* dx) {
  using B = xsimd::batch<T, A>;
  using U = detail::LaneIndex<T, A>;
  constexpr int64_t P = static_cast<int64_t>(B::size) / 2;
  constexpr auto dup_halves = xsimd::make_batch_constant<U, detail::DupHalves>();
  constexpr auto dup_even = xsimd::make_batch_constant<U, detail::DupEven>();
  alignas(64) T parity[B::size];
  for (size_t i = 0; i < B::size; ++i) parity[i] = T(i % 2);
  const B left_right = B::load_aligned(parity), lower = left_right + T(2);
  const int64_t oh = h / 2, ow = w / 2;
  const T* const g_end = g + planes * oh * ow;
  for (int64_t plane = 0; plane < planes; ++plane, x += h * w, dx += h * w, g += oh * ow) {
    detail::visit_windows_2x2<A>(x, h, w, [&](int64_t p, int64_t q, const B& code, const B&) {
      // both lanes of a window's pair get its gradient and its tap; each lane keeps the gradient
      // if it is that tap, in the upper row (taps 0, 1) or the lower one (2, 3). The gradient is
      // read as a whole batch (half of it unused) except at the end of g, where a copy is read
      // (a copy everywhere stalled: a batch load of two half-batch stores is not forwarded).
      const T* gp = g + p * ow + q;
      B gb;
      if (g_end - gp >= static_cast<int64_t>(B::size)) {
        gb = B::load_unaligned(gp);
      } else {
        alignas(64) T gq[B::size] = {};
        std::copy_n(gp, P, gq);
        gb = B::load_aligned(gq);
      }
      const B gd = xsimd::swizzle(gb, dup_halves), tap = xsimd::swizzle(code, dup_even);
      T* d0 = dx + 2 * p * w + 2 * q;
      xsimd::select(tap == left_right, gd, B(T(0))).store_unaligned(d0);
      xsimd::select(tap == lower, gd, B(T(0))).store_unaligned(d0 + w);
    });
    for (int64_t p = 0; p < oh; ++p) {
      T* d0 = dx + 2 * p * w;
      if (ow < P)  // rows shorter than a batch: one window at a time
        for (int64_t q = 0; q < ow; ++q) {
          const int t = detail::first_max_tap_2x2<A>(x, w, p, q);
          for (int k = 0; k < 4; ++k) d0[(k / 2) * w + 2 * q + k % 2] = k == t ? g[p * ow + q] : T(0);
        }
      if (w % 2) d0[w - 1] = d0[2 * w - 1] = T(0);  // a last odd column: in no window
    }
    if (h % 2) std::fill_n(dx + (h - 1) * w, w, T(0));  // a last odd row: in no window
  }
}

// The wide instantiations are compiled in their own files only (flags this file's includers lack).
#if TAPEGRAD_SIMD_AVX512 && !defined(TAPEGRAD_SIMD_AVX512_TU)
extern template struct Kernels<xsimd::avx512f, float>;
extern template struct Kernels<xsimd::avx512f, double>;
#endif
#if TAPEGRAD_SIMD_AVX2 && !defined(TAPEGRAD_SIMD_AVX2_TU)
extern template struct Kernels<xsimd::fma3<xsimd::avx2>, float>;
extern template struct Kernels<xsimd::fma3<xsimd::avx2>, double>;
#endif

namespace detail {
/// Records the path for last_path() (simd.cpp).
void note_path(Isa isa);
}  // namespace detail

/// Calls f(Kernels<A, T>{}) once with the architecture of the widest path built, run by this CPU
/// and allowed by kernel_isa(), and returns its result. Row loops dispatch once this way, and the
/// baseline's bodies are instantiated in the caller's own file, where the compiler may inline them
/// (simd.hpp's per-row functions dispatch on every call, through a call into simd.cpp).
template <class T, class F>
decltype(auto) with_kernels(F&& f) {
  [[maybe_unused]] const Isa allowed = kernel_isa();
#if TAPEGRAD_SIMD_AVX512
  if (allowed >= Isa::avx512) {
    detail::note_path(Isa::avx512);
    return f(Kernels<xsimd::avx512f, T>{});
  }
#endif
#if TAPEGRAD_SIMD_AVX2
  if (allowed >= Isa::avx2) {
    detail::note_path(Isa::avx2);
    return f(Kernels<xsimd::fma3<xsimd::avx2>, T>{});
  }
#endif
  detail::note_path(Isa::portable);
  return f(Kernels<xsimd::default_arch, T>{});
}

}  // namespace tapegrad::simd
