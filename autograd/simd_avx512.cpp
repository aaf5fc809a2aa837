// The AVX-512 instantiation of simd_kernels.hpp, compiled with -mavx512f -mavx512dq (TapegradDeps.cmake, which
// also defines TAPEGRAD_SIMD_AVX512 when the compiler takes the flag). Only this explicit
// instantiation is defined here: every function it compiles has xsimd::avx512f in its mangled
// name, so no baseline caller can be linked to AVX-512 code (scripts/check_isa_symbols.sh checks).
#if TAPEGRAD_SIMD_AVX512
// GCC 12 warns that the AVX-512 intrinsics' internal _mm512_undefined_ps() "may be used
// uninitialized" / "is used uninitialized" (a false positive, GCC bug 105593), where the
// instantiations inline them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define TAPEGRAD_SIMD_AVX512_TU  // this file instantiates them: no extern template
#include "autograd/simd_kernels.hpp"

template struct tapegrad::simd::Kernels<xsimd::avx512f, float>;
template struct tapegrad::simd::Kernels<xsimd::avx512f, double>;
#pragma GCC diagnostic pop
#endif
