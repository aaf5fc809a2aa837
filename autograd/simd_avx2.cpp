// The AVX2 + FMA instantiation of simd_kernels.hpp for builds whose baseline lacks AVX2 (e.g.
// TAPEGRAD_ARCH_FLAGS=""), compiled with -mavx2 -mfma; TapegradDeps.cmake defines TAPEGRAD_SIMD_AVX2
// then. As in simd_avx512.cpp, every function compiled here has the arch in its mangled name.
#if TAPEGRAD_SIMD_AVX2
#define TAPEGRAD_SIMD_AVX2_TU  // this file instantiates them: no extern template
#include "autograd/simd_kernels.hpp"

template struct tapegrad::simd::Kernels<xsimd::fma3<xsimd::avx2>, float>;
template struct tapegrad::simd::Kernels<xsimd::fma3<xsimd::avx2>, double>;
#endif
