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
  /// dx = g·gelu'(x) over [0, n); the exact form reads gelu's output y, the tanh form does not.
  static void gelu_backward(const T* g, const T* x, const T* y, T* dx, int64_t n, bool tanh_form);
  /// 2×2, stride-2 max pooling of `planes` planes [h, w] (simd.hpp's max_pool_2x2).
  static void max_pool_2x2(const T* x, int64_t planes, int64_t h, int64_t w, T* out, int64_t* idx);
};

namespace detail {

inline constexpr double kSqrt1_2 = 0.70710678118654752440;  // 1/√2

/// The tanh form through the logistic function, ½(1 + tanh u) = σ(2u) = 1/(1 + e^(−2u)) with
/// u = k(x + c·x³): one exp and one division per element instead of xsimd's tanh, whose two range
/// branches both run on a mixed batch. Returns σ(2u).
template <class B>
B gelu_tanh_sigma(const B& x) {
  using T = typename B::value_type;
  return T(1) / (T(1) + xsimd::exp(T(-2 * kGeluK) * (x + T(kGeluC) * x * x * x)));
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
    return x * gelu_tanh_sigma(x);
  }
};

/// g·gelu'(x) of the tanh form: with s = σ(2u), d/dx [x·s] = s + x·s(1 − s)·2u', u' = k(1 + 3c·x²).
struct GeluTanhBackward {
  template <class B>
  B operator()(const B& g, const B& x) const {
    using T = typename B::value_type;
    const B s = gelu_tanh_sigma(x);
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
    const B ax = xsimd::abs(x);
    const auto usable = (ax > B(T(1e-3))) && (ax < B(T(1e30)));
    B cdf = y / x;
    if (!xsimd::all(usable)) cdf = xsimd::select(usable, cdf, T(0.5) * (T(1) + xsimd::erf(x * T(kSqrt1_2))));
    return g * (cdf + x * xsimd::exp(T(-0.5) * x * x) * T(kInvSqrt2Pi));
  }
};

/// Lane j of the result is lane j ^ 1 of the input: each even lane meets its odd neighbour.
struct SwapPairs {
  static constexpr unsigned get(unsigned index, unsigned /*size*/) { return index ^ 1u; }
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
  if (tanh_form) {
    const T* const in[2] = {g, x};
    detail::map_range<A>(in, dx, n, detail::GeluTanhBackward{});
  } else {
    const T* const in[3] = {g, x, y};
    detail::map_range<A>(in, dx, n, detail::GeluExactBackward{});
  }
}

template <class A, class T>
void Kernels<A, T>::max_pool_2x2(const T* x, int64_t planes, int64_t h, int64_t w, T* out, int64_t* idx) {
  using B = xsimd::batch<T, A>;
  using U = xsimd::batch<std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>, A>;
  constexpr int64_t P = static_cast<int64_t>(B::size) / 2;  // windows per batch
  const int64_t oh = h / 2, ow = w / 2;
  // A window's four taps in scan order, numbered 0–3 (row-major), and their plane offsets.
  const int64_t offset[4] = {0, 1, w, w + 1};
  for (int64_t plane = 0; plane < planes; ++plane, x += h * w)
    for (int64_t p = 0; p < oh; ++p, out += ow, idx += ow) {
      const T* r0 = x + 2 * p * w;
      const T* r1 = r0 + w;
      const int64_t base = 2 * p * w;
      // P windows at once: each row's pair meets in the even lanes (the left tap unless the right
      // one replaces it), then the lower row's winner replaces the upper's only if it is larger
      // or the first NaN, which keeps the first maximum in scan order.
      auto windows = [&](int64_t q) {
        const B a = B::load_unaligned(r0 + 2 * q), b = B::load_unaligned(r1 + 2 * q);
        constexpr auto swap = xsimd::make_batch_constant<U, detail::SwapPairs>();
        const B as = xsimd::swizzle(a, swap), bs = xsimd::swizzle(b, swap);
        const auto ma = detail::replaces(as, a), mb = detail::replaces(bs, b);
        const B va = xsimd::select(ma, as, a), vb = xsimd::select(mb, bs, b);
        const B ta = xsimd::select(ma, B(T(1)), B(T(0))), tb = xsimd::select(mb, B(T(3)), B(T(2)));
        const auto mv = detail::replaces(vb, va);
        alignas(64) T value[2 * P], tap[2 * P];
        xsimd::select(mv, vb, va).store_unaligned(value);
        xsimd::select(mv, tb, ta).store_unaligned(tap);
        for (int64_t j = 0; j < P; ++j) {
          out[q + j] = value[2 * j];
          idx[q + j] = base + 2 * (q + j) + offset[static_cast<int>(tap[2 * j])];
        }
      };
      int64_t q = 0;
      if (ow >= P) {
        for (; q + P <= ow; q += P) windows(q);
        if (q < ow) windows(ow - P);  // the last P windows again (the same answers), instead of a scalar tail
        q = ow;
      }
      for (; q < ow; ++q) {  // the same comparisons, one window at a time
        const T* a = r0 + 2 * q;
        const T* b = r1 + 2 * q;
        const bool ma = detail::replaces(a[1], a[0]), mb = detail::replaces(b[1], b[0]);
        const T va = ma ? a[1] : a[0], vb = mb ? b[1] : b[0];
        const int t = detail::replaces(vb, va) ? 2 + mb : ma;
        out[q] = t >= 2 ? vb : va;
        idx[q] = base + 2 * q + offset[t];
      }
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
