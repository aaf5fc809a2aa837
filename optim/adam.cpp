#include "optim/adam.hpp"

#include "autograd/cpu.hpp"

// GCC 12 warns that the AVX-512 intrinsics' internal _mm512_undefined_ps() "may be used uninitialized"
// (a false positive, GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cmath>
#include <type_traits>

#include "autograd/node.hpp"
#include "autograd/parallel.hpp"

namespace tapegrad::optim {

Adam::Adam(std::vector<Tensor> params, AdamOptions options) : Adam("Adam", false, std::move(params), options) {}

Adam::Adam(const char* name, bool decoupled, std::vector<Tensor> params, AdamOptions options)
    : Optimizer(name), decoupled_(decoupled) {
  add_param_group(std::move(params), options);
}

std::string AdamOptions::problem() const {
  if (!(lr_ >= 0)) return "lr must be >= 0, got " + std::to_string(lr_);
  if (!(eps_ >= 0)) return "eps must be >= 0, got " + std::to_string(eps_);
  if (!(beta1_ >= 0 && beta1_ < 1) || !(beta2_ >= 0 && beta2_ < 1))
    return "betas must be in [0, 1), got (" + std::to_string(beta1_) + ", " + std::to_string(beta2_) + ")";
  if (!(weight_decay_ >= 0)) return "weight_decay must be >= 0, got " + std::to_string(weight_decay_);
  return "";
}

void Adam::add_param_group(std::vector<Tensor> params, AdamOptions o) {
  if (decoupled_ && !o.weight_decay_set()) o.weight_decay(1e-2);  // AdamW's default
  check_options(o);
  add_group(std::move(params));
  options_.push_back(o);
}

namespace {

/// The per-element constants of one Adam update.
template <class T>
struct AdamStep {
  T* __restrict w;
  const T* __restrict dw;
  T* __restrict m;
  T* __restrict v;
  T* __restrict vmax;
  int64_t n;
  T one_b1, b2, one_b2, eps, wd, decay, inv_bc2, lr_t;
};

/// PyTorch's update: m += (1−β₁)(g − m); v = β₂v + (1−β₂)g²; w = w·decay − lr_t·m / (√v / √bc₂ + ε).
/// Branches are compile-time flags so that the loop vectorises; the body is inlined into a default
/// and an AVX-512 entry point (the division and square root are the bottleneck: 512-bit halves them).
template <class T, bool kCoupledDecay, bool kAmsgrad>
[[gnu::always_inline]] inline void adam_loop(const AdamStep<T>& s) {
  for (int64_t k = 0; k < s.n; ++k) {
    T d = s.dw[k];
    if constexpr (kCoupledDecay) d += s.wd * s.w[k];
    s.m[k] += s.one_b1 * (d - s.m[k]);
    s.v[k] = s.b2 * s.v[k] + s.one_b2 * d * d;
    T vk = s.v[k];
    if constexpr (kAmsgrad) vk = s.vmax[k] = s.vmax[k] > vk ? s.vmax[k] : vk;
    s.w[k] = s.w[k] * s.decay - s.lr_t * (s.m[k] / (std::sqrt(vk) * s.inv_bc2 + s.eps));
  }
}

template <class T, bool kCoupledDecay, bool kAmsgrad>
void adam_default(const AdamStep<T>& s) {
  adam_loop<T, kCoupledDecay, kAmsgrad>(s);
}

template <class T, bool kCoupledDecay, bool kAmsgrad>
__attribute__((target("avx512f,prefer-vector-width=512"))) void adam_avx512(const AdamStep<T>& s) {
  adam_loop<T, kCoupledDecay, kAmsgrad>(s);
}

/// The float32 AVX-512 update: the same formula, 16 lanes at a time (the tail under a mask), with
/// the division replaced by a reciprocal estimate refined by one Newton step, r ← r·(2 − d·r), which
/// is within 2 ulp of 1/d (tests/optim/test_adam_kernel.cpp bounds it against float64). The divider
/// is the loop's bottleneck: the square root stays exact, the division goes (bench_nn
/// BM_AdamStepSeedMlp: 49 → 35 µs isolated; about 6 µs of a training step, where memory bounds it).
template <bool kCoupledDecay, bool kAmsgrad>
__attribute__((target("avx512f"))) void adam_avx512_f32(const AdamStep<float>& s) {
  const __m512 one_b1 = _mm512_set1_ps(s.one_b1), b2 = _mm512_set1_ps(s.b2), one_b2 = _mm512_set1_ps(s.one_b2),
               eps = _mm512_set1_ps(s.eps), wd = _mm512_set1_ps(s.wd), decay = _mm512_set1_ps(s.decay),
               inv_bc2 = _mm512_set1_ps(s.inv_bc2), lr_t = _mm512_set1_ps(s.lr_t), two = _mm512_set1_ps(2.f);
  float *pw = s.w, *pm = s.m, *pv = s.v, *pvmax = s.vmax;  // locals: the stores cannot alias them
  const float* pd = s.dw;
  const int64_t n = s.n;
  for (int64_t k = 0; k < n; k += 16) {
    const __mmask16 lanes = n - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - k)) - 1);
    __m512 w = _mm512_maskz_loadu_ps(lanes, pw + k), d = _mm512_maskz_loadu_ps(lanes, pd + k);
    __m512 m = _mm512_maskz_loadu_ps(lanes, pm + k), v = _mm512_maskz_loadu_ps(lanes, pv + k);
    if constexpr (kCoupledDecay) d = _mm512_fmadd_ps(wd, w, d);
    m = _mm512_fmadd_ps(one_b1, _mm512_sub_ps(d, m), m);
    v = _mm512_fmadd_ps(b2, v, _mm512_mul_ps(_mm512_mul_ps(one_b2, d), d));  // (1−β₂)·g·g in the scalar order
    _mm512_mask_storeu_ps(pm + k, lanes, m);
    _mm512_mask_storeu_ps(pv + k, lanes, v);
    if constexpr (kAmsgrad) {
      v = _mm512_max_ps(_mm512_maskz_loadu_ps(lanes, pvmax + k), v);
      _mm512_mask_storeu_ps(pvmax + k, lanes, v);
    }
    const __m512 den = _mm512_fmadd_ps(_mm512_sqrt_ps(v), inv_bc2, eps);
    const __m512 r0 = _mm512_rcp14_ps(den);
    __m512 r = _mm512_mul_ps(r0, _mm512_fnmadd_ps(den, r0, two));
    // The Newton step turns 1/inf (0·inf) and 1/0 (inf·0) into NaN: keep the estimate there, which
    // is exact (0 and inf); a NaN den stays NaN either way.
    r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q), r, r0);
    w = _mm512_fnmadd_ps(lr_t, _mm512_mul_ps(m, r), _mm512_mul_ps(w, decay));
    _mm512_mask_storeu_ps(pw + k, lanes, w);
  }
}

template <class T, bool kCoupledDecay, bool kAmsgrad>
void adam_range(const AdamStep<T>& s) {
  const bool avx512 = kernel_isa() >= Isa::avx512;  // the CPU has it, and no test forces a narrower path
  if constexpr (std::is_same_v<T, float>) {
    if (avx512) return adam_avx512_f32<kCoupledDecay, kAmsgrad>(s);
  }
  if (avx512) adam_avx512<T, kCoupledDecay, kAmsgrad>(s);
  else adam_default<T, kCoupledDecay, kAmsgrad>(s);
}

/// adam_range over ranges of whole grains in parallel (each element's update is independent; the
/// ranges start at multiples of kGrain, so the vector bodies and tails are those of one pass).
template <class T, bool kCoupledDecay, bool kAmsgrad>
void adam_dispatch(const AdamStep<T>& s) {
  parallel::parallel_for(0, s.n, parallel::kGrain, [&s](int64_t lo, int64_t hi) {
    AdamStep<T> part = s;
    part.w += lo, part.dw += lo, part.m += lo, part.v += lo, part.n = hi - lo;
    if (part.vmax) part.vmax += lo;
    adam_range<T, kCoupledDecay, kAmsgrad>(part);
  });
}

}  // namespace

void Adam::step() {
  StepScope scope;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const AdamOptions& o = options_[g];
    // Plain variables, not a structured binding: clang before 16 cannot capture bindings in lambdas.
    const double beta1 = o.betas().first, beta2 = o.betas().second;
    for_each_param(g, [&](const Tensor& p, const Tensor& grad, size_t i) {
      double& t = counter(i, "step");
      t += 1;
      Tensor& m_t = state(i, "exp_avg", p);
      Tensor& v_t = state(i, "exp_avg_sq", p);
      Tensor vmax_t = o.amsgrad() ? state(i, "max_exp_avg_sq", p) : Tensor();
      const double step_size = o.lr() / (1 - std::pow(beta1, t));
      const double bc2_sqrt = std::sqrt(1 - std::pow(beta2, t));
      detail::dispatch(p, [&](auto z) {
        using T = decltype(z);
        AdamStep<T> s{p.mutable_data<T>(), grad.data<T>(), m_t.mutable_data<T>(), v_t.mutable_data<T>(),
                      vmax_t.defined() ? vmax_t.mutable_data<T>() : nullptr, p.numel(), T(1 - beta1), T(beta2),
                      T(1 - beta2), T(o.eps()), decoupled_ ? T(0) : T(o.weight_decay()),
                      decoupled_ ? T(1 - o.lr() * o.weight_decay()) : T(1), T(1 / bc2_sqrt), T(step_size)};
        if (s.wd != 0) s.vmax ? adam_dispatch<T, true, true>(s) : adam_dispatch<T, true, false>(s);
        else s.vmax ? adam_dispatch<T, false, true>(s) : adam_dispatch<T, false, false>(s);
      });
    });
  }
}

}  // namespace tapegrad::optim
