#include "autograd/blas.hpp"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

// OpenBLAS entry points (declared here rather than through <cblas.h>, which conflicts with
// xtensor-blas's prototypes). The DYNAMIC_ARCH internals are weak: absent in other builds.
extern "C" {
char* openblas_get_corename(void);
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
__attribute__((weak)) extern void* gotoblas;
__attribute__((weak)) void gotoblas_dynamic_init(void);
}

namespace tapegrad {

void configure_blas() {
  static std::once_flag once;
  std::call_once(once, [] {
    const bool user_core = std::getenv("OPENBLAS_CORETYPE") != nullptr;
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!user_core && &gotoblas != nullptr && gotoblas_dynamic_init != nullptr &&
        std::strcmp(openblas_get_corename(), "Prescott") == 0 && (avx512 || avx2)) {
      setenv("OPENBLAS_CORETYPE", avx512 ? "SkylakeX" : "Haswell", 0);
      gotoblas = nullptr;
      gotoblas_dynamic_init();
      unsetenv("OPENBLAS_CORETYPE");
    }
    if (std::getenv("TAPEGRAD_NUM_THREADS") || (!std::getenv("OPENBLAS_NUM_THREADS") && !std::getenv("OMP_NUM_THREADS")))
      openblas_set_num_threads(1);  // products split over tapegrad's own threads (ops/linalg.cpp)
  });
}

int blas_num_threads() {
  configure_blas();
  return openblas_get_num_threads();
}

std::string blas_core_name() {
  configure_blas();
  return openblas_get_corename();
}

bool set_flush_denormal(bool enabled) {
#if defined(__SSE__)
  constexpr unsigned kFtzDaz = 0x8040;  // MXCSR flush-to-zero (bit 15) | denormals-are-zero (bit 6)
  _mm_setcsr(enabled ? (_mm_getcsr() | kFtzDaz) : (_mm_getcsr() & ~kFtzDaz));
  return true;
#else
  return !enabled;
#endif
}

bool flush_denormal() {
#if defined(__SSE__)
  return (_mm_getcsr() & 0x8040) == 0x8040;
#else
  return false;
#endif
}

}  // namespace tapegrad
