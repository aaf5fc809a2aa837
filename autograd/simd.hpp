#pragma once
/// \file simd.hpp
/// tapegrad's hand-vectorised row kernels, each with one body (autograd/simd_kernels.hpp) compiled
/// for several instruction sets and chosen at run time on every call: the AVX-512 instantiation
/// when this build has one, the CPU has AVX-512 F + DQ and kernel_isa() allows it; in builds whose
/// baseline lacks AVX2, the AVX2 + FMA instantiation when the CPU has both and kernel_isa() allows
/// it; the baseline (TAPEGRAD_ARCH_FLAGS) otherwise. cpu.hpp's set_kernel_isa / IsaScope /
/// TAPEGRAD_ISA force a narrower path; last_path() says which one ran. (Row loops inside the
/// library dispatch once per loop through simd_kernels.hpp's with_kernels instead.)
///
/// T is float or double; pointers are to contiguous rows of n values. The paths do the same
/// arithmetic in the same order within a vector, but reduce over vectors of 8 or 16 floats (4 or 8
/// doubles), and xsimd's exp/erf differ by an ulp or so: results agree within float32 1e-6
/// relative (tests/autograd/test_isa_kernels.cpp checks each kernel).
#include <cstdint>
#include <utility>

#include "autograd/cpu.hpp"

namespace tapegrad::simd {

/// √(2/π), gelu's tanh-form factor k in u = k(x + c·x³).
inline constexpr double kGeluK = 0.79788456080286535588;
/// c = 0.044715 in gelu's tanh form.
inline constexpr double kGeluC = 0.044715;
/// 1/√(2π), the normal density's factor (gelu's exact derivative).
inline constexpr double kInvSqrt2Pi = 0.39894228040143267794;

/// max(x[0..n)); −∞ for n = 0. A NaN may or may not win (callers that care check the row).
template <class T>
T row_max(const T* x, int64_t n);

/// The row step of softmax, log_softmax and cross-entropy over n ≥ 1 values: sets m = max(in)
/// (0 when not finite), writes out[k] = exp(in[k] − m) unless out is null, returns Σ exp(in[k] − m).
template <class T>
T exp_shifted_row(const T* in, T* out, int64_t n, T& m);

/// x ← exp(x − shift) in place; returns Σ exp(x − shift) (exp(−∞) = 0). Attention's tile rows.
template <class T>
T exp_shift_row(T* x, int64_t n, T shift);

/// softmax's first-order backward over one row: dx = y·(g − Σ g·y); with log_form (y is
/// log_softmax's output) dx = g − exp(y)·Σ g. dx may not alias y or g.
template <class T>
void softmax_backward_row(const T* y, const T* g, T* dx, int64_t n, bool log_form);

/// {μ, Σ (x − μ)²} over a row of n ≥ 1 values; μ = mean(x) when centered (two passes, so that the
/// squares are of small numbers when |μ| ≫ σ), else μ = 0. Layer norm and RMS norm rows.
template <class T>
std::pair<T, T> row_moments(const T* x, int64_t n, bool centered);

/// {Σ a (0 unless centered), Σ a·(x − μ)} over a row: the norms' backward dots.
template <class T>
std::pair<T, T> row_sums(const T* a, const T* x, T mu, int64_t n, bool centered);

/// y[k] = gelu(x[k]) for k < n: ½x(1 + erf(x/√2)), or with tanh_form x·σ(2√(2/π)(x + 0.044715x³)).
/// y may alias x.
template <class T>
void gelu(const T* x, T* y, int64_t n, bool tanh_form);

/// dx[k] = g[k]·gelu'(x[k]) for k < n. Both forms read gelu's output y: Φ(x) or σ(2u) is y/x away
/// from 0 and ±∞, saving an erf or an exp. dx may alias g.
template <class T>
void gelu_backward(const T* g, const T* x, const T* y, T* dx, int64_t n, bool tanh_form);

/// 2×2 max pooling with stride 2 and no padding over `planes` planes of [h, w] values (rows of w),
/// each into [h/2, w/2] (rounded down: a last odd row or column is not read). Each window's tap is
/// its first maximum of x in row-major scan order, a NaN counting as the maximum (the first NaN
/// wins; PyTorch's taps); out gets src's value there: with src = x, the pooled maxima; with
/// another tensor of x's shape, its values at x's taps (the double backward). Every path picks
/// the same taps.
template <class T>
void max_pool_2x2(const T* x, const T* src, int64_t planes, int64_t h, int64_t w, T* out);
/// The gradient of max_pool_2x2 (the pooled maxima) for g [planes, h/2, w/2]: dx [planes, h, w]
/// holds each window's g at its tap and 0 at its other taps and at a last odd row or column.
/// Written once, densely (no zero fill, no scatter).
template <class T>
void max_pool_2x2_backward(const T* x, const T* g, int64_t planes, int64_t h, int64_t w, T* dx);
/// The path the calling thread's last call to a kernel above took: Isa::avx512 (the AVX-512
/// instantiation), Isa::avx2 (the separate AVX2 one, only in builds whose baseline lacks AVX2) or
/// Isa::portable (the baseline instantiation). For tests: it shows that IsaScope / TAPEGRAD_ISA
/// really route the kernels.
Isa last_path();

/// Whether this build holds a separate instantiation for `isa` (Isa::portable: always). False for
/// avx512 when the compiler cannot target AVX-512 or the baseline already includes it, and for avx2
/// when the baseline already includes AVX2 (the baseline path is then that code).
bool path_built(Isa isa);

}  // namespace tapegrad::simd
