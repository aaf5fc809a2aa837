#pragma once
/// \file cpu.hpp
/// Which instruction set tapegrad's hand-vectorised kernels run.
///
/// The baseline: the library is compiled with TAPEGRAD_ARCH_FLAGS (CMake cache variable, default
/// `-mavx2 -mfma`, i.e. x86-64 with AVX2 and FMA; `""` for any x86-64). A CPU below the baseline
/// gets a clear error before any library code runs (baseline_problem, checked by a constructor in
/// a translation unit compiled without AVX), not an illegal-instruction crash.
///
/// Above it, the hand-vectorised kernels choose a wider path at run time from what the CPU reports,
/// so one binary runs its best path on any x86-64 machine: the row kernels of autograd/simd.hpp
/// (softmax / log_softmax / cross-entropy rows, softmax backward, gelu and its backward, layer and
/// RMS norm statistics, attention's exp rows) and Adam's update have an AVX-512 path; a build whose
/// baseline lacks AVX2 also gets an AVX2 + FMA path for the row kernels. `set_kernel_isa` (or the
/// environment variable TAPEGRAD_ISA=portable|avx2|avx512, read once at start-up) limits the
/// choice, so that tests and benchmarks can force each path:
///
///     tapegrad::IsaScope portable(tapegrad::Isa::portable);  // every kernel takes its baseline path
///     if (!tapegrad::isa_supported(tapegrad::Isa::avx512)) { /* say the AVX-512 path was skipped */ }
#include <cstdint>
#include <string>

namespace tapegrad {

/// Kernel paths, from the most portable up.
enum class Isa : uint8_t {
  portable = 0,  ///< the baseline: the code built with TAPEGRAD_ARCH_FLAGS only (AVX2 + FMA by default)
  avx2 = 1,      ///< AVX2 + FMA detected at run time, 256-bit vectors (the baseline itself by default)
  avx512 = 2,    ///< AVX-512 F + DQ detected at run time, 512-bit vectors (simd.hpp's kernels, Adam's update)
};

/// "portable", "avx2" or "avx512".
const char* isa_name(Isa isa);
/// Whether this CPU can run `isa` (portable always can).
bool isa_supported(Isa isa);
/// The widest path this CPU supports.
Isa cpu_isa();
/// The widest path the kernels may use now: cpu_isa(), limited by set_kernel_isa / TAPEGRAD_ISA.
Isa kernel_isa();
/// Limits the kernels to `isa` (throws std::invalid_argument when the CPU lacks it); returns the
/// previous limit. Process-wide: set it before starting threads that run kernels.
Isa set_kernel_isa(Isa isa);

/// RAII: set_kernel_isa in a scope.
class IsaScope {
 public:
  /// Limits the kernels to `isa` until the scope ends (throws like set_kernel_isa).
  explicit IsaScope(Isa isa) : prev_(set_kernel_isa(isa)) {}
  ~IsaScope() { set_kernel_isa(prev_); }
  IsaScope(const IsaScope&) = delete;
  IsaScope& operator=(const IsaScope&) = delete;

 private:
  Isa prev_;
};

/// x86-64 features a build's baseline may require (bits of a mask).
enum CpuFeature : uint32_t {
  cpu_sse3 = 1u << 0,       ///< SSE3
  cpu_ssse3 = 1u << 1,      ///< SSSE3
  cpu_sse4_1 = 1u << 2,     ///< SSE4.1
  cpu_sse4_2 = 1u << 3,     ///< SSE4.2
  cpu_popcnt = 1u << 4,     ///< POPCNT
  cpu_avx = 1u << 5,        ///< AVX
  cpu_avx2 = 1u << 6,       ///< AVX2
  cpu_fma = 1u << 7,        ///< FMA3
  cpu_f16c = 1u << 8,       ///< F16C
  cpu_bmi = 1u << 9,        ///< BMI1
  cpu_bmi2 = 1u << 10,      ///< BMI2
  cpu_avx512f = 1u << 11,   ///< AVX-512 Foundation
  cpu_avx512dq = 1u << 12,  ///< AVX-512 DQ
  cpu_avx512bw = 1u << 13,  ///< AVX-512 BW
  cpu_avx512vl = 1u << 14,  ///< AVX-512 VL
  cpu_avx512cd = 1u << 15,  ///< AVX-512 CD
};

/// The CpuFeature bits TAPEGRAD_ARCH_FLAGS let the compiler use in the library (its baseline).
uint32_t baseline_features();
/// The CpuFeature bits this CPU has.
uint32_t cpu_features();
/// TAPEGRAD_ARCH_FLAGS as the library was configured, e.g. "-mavx2 -mfma".
const char* baseline_flags();
/// "" when a CPU with the features `cpu` can run a build whose baseline needs `built`, otherwise the
/// error the library stops with: "tapegrad was built for x86-64 with AVX2 and FMA
/// (TAPEGRAD_ARCH_FLAGS = -mavx2 -mfma); this CPU lacks AVX2 and FMA. ...". Pure (tests give it a
/// faked CPU answer); the start-up check calls it with baseline_features() and cpu_features().
std::string baseline_problem(uint32_t built, uint32_t cpu);

}  // namespace tapegrad
