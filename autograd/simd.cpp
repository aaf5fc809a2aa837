// The dispatching entry points of simd.hpp (with_kernels on every call) and the baseline
// instantiation of simd_kernels.hpp (compiled with TAPEGRAD_ARCH_FLAGS like the rest of the
// library). The wider instantiations live in simd_avx512.cpp and simd_avx2.cpp.
#include "autograd/simd.hpp"

#include "autograd/simd_kernels.hpp"

namespace tapegrad {
namespace detail {
/// The CpuFeature bits this file's flags (the library's baseline) let the compiler use; read by
/// the start-up check in cpu.cpp (data: reading it runs no code compiled with these flags).
extern const uint32_t baseline_feature_bits = 0u
#ifdef __SSE3__
    | cpu_sse3
#endif
#ifdef __SSSE3__
    | cpu_ssse3
#endif
#ifdef __SSE4_1__
    | cpu_sse4_1
#endif
#ifdef __SSE4_2__
    | cpu_sse4_2
#endif
#ifdef __POPCNT__
    | cpu_popcnt
#endif
#ifdef __AVX__
    | cpu_avx
#endif
#ifdef __AVX2__
    | cpu_avx2
#endif
#ifdef __FMA__
    | cpu_fma
#endif
#ifdef __F16C__
    | cpu_f16c
#endif
#ifdef __BMI__
    | cpu_bmi
#endif
#ifdef __BMI2__
    | cpu_bmi2
#endif
#ifdef __AVX512F__
    | cpu_avx512f
#endif
#ifdef __AVX512DQ__
    | cpu_avx512dq
#endif
#ifdef __AVX512BW__
    | cpu_avx512bw
#endif
#ifdef __AVX512VL__
    | cpu_avx512vl
#endif
#ifdef __AVX512CD__
    | cpu_avx512cd
#endif
    ;
}  // namespace detail

namespace simd {
namespace {
thread_local Isa last = Isa::portable;
}  // namespace

void detail::note_path(Isa isa) { last = isa; }

template <class T, class F>
decltype(auto) dispatch(F&& f) {
  return with_kernels<T>(std::forward<F>(f));
}

template <class T>
T row_max(const T* x, int64_t n) {
  return dispatch<T>([&](auto k) { return k.row_max(x, n); });
}

template <class T>
T exp_shifted_row(const T* in, T* out, int64_t n, T& m) {
  return dispatch<T>([&](auto k) { return k.exp_shifted_row(in, out, n, m); });
}

template <class T>
T exp_shift_row(T* x, int64_t n, T shift) {
  return dispatch<T>([&](auto k) { return k.exp_shift_row(x, n, shift); });
}

template <class T>
void softmax_backward_row(const T* y, const T* g, T* dx, int64_t n, bool log_form) {
  dispatch<T>([&](auto k) { k.softmax_backward_row(y, g, dx, n, log_form); });
}

template <class T>
std::pair<T, T> row_moments(const T* x, int64_t n, bool centered) {
  return dispatch<T>([&](auto k) { return k.row_moments(x, n, centered); });
}

template <class T>
std::pair<T, T> row_sums(const T* a, const T* x, T mu, int64_t n, bool centered) {
  return dispatch<T>([&](auto k) { return k.row_sums(a, x, mu, n, centered); });
}

template <class T>
void gelu(const T* x, T* y, int64_t n, bool tanh_form) {
  dispatch<T>([&](auto k) { k.gelu(x, y, n, tanh_form); });
}

template <class T>
void gelu_backward(const T* g, const T* x, const T* y, T* dx, int64_t n, bool tanh_form) {
  dispatch<T>([&](auto k) { k.gelu_backward(g, x, y, dx, n, tanh_form); });
}

template <class T>
void max_pool_2x2(const T* x, const T* src, int64_t planes, int64_t h, int64_t w, T* out) {
  dispatch<T>([&](auto k) { k.max_pool_2x2(x, src, planes, h, w, out); });
}

template <class T>
void max_pool_2x2_backward(const T* x, const T* g, int64_t planes, int64_t h, int64_t w, T* dx) {
  dispatch<T>([&](auto k) { k.max_pool_2x2_backward(x, g, planes, h, w, dx); });
}
Isa last_path() { return last; }

bool path_built(Isa isa) {
  switch (isa) {
    case Isa::portable: return true;
    case Isa::avx2: return TAPEGRAD_SIMD_AVX2 != 0;
    case Isa::avx512: return TAPEGRAD_SIMD_AVX512 != 0;
  }
  return false;
}

#define TAPEGRAD_SIMD_INSTANTIATE(T)                                                              \
  template T row_max<T>(const T*, int64_t);                                                       \
  template T exp_shifted_row<T>(const T*, T*, int64_t, T&);                                       \
  template T exp_shift_row<T>(T*, int64_t, T);                                                    \
  template void softmax_backward_row<T>(const T*, const T*, T*, int64_t, bool);                   \
  template std::pair<T, T> row_moments<T>(const T*, int64_t, bool);                               \
  template std::pair<T, T> row_sums<T>(const T*, const T*, T, int64_t, bool);                     \
  template void gelu<T>(const T*, T*, int64_t, bool);                                             \
  template void gelu_backward<T>(const T*, const T*, const T*, T*, int64_t, bool);                \
  template void max_pool_2x2<T>(const T*, const T*, int64_t, int64_t, int64_t, T*);                \
  template void max_pool_2x2_backward<T>(const T*, const T*, int64_t, int64_t, int64_t, T*);
TAPEGRAD_SIMD_INSTANTIATE(float)
TAPEGRAD_SIMD_INSTANTIATE(double)
#undef TAPEGRAD_SIMD_INSTANTIATE

}  // namespace simd
}  // namespace tapegrad
