#pragma once
/// \file cpu.hpp
/// Which instruction set tapegrad's hand-vectorised kernels run. The library is built for a
/// portable x86-64 baseline (AVX2 + FMA, TAPEGRAD_ARCH_FLAGS); kernels with a wider path (today
/// Adam's AVX-512 update) choose it at run time from what the CPU reports, so one binary runs its
/// best path on any x86-64 machine. `set_kernel_isa` (or the environment variable
/// TAPEGRAD_ISA=portable|avx2|avx512, read once at start-up) limits the choice, so that tests
/// and benchmarks can force each path:
///
///     tapegrad::IsaScope portable(tapegrad::Isa::portable);  // every kernel takes its portable path
///     if (!tapegrad::isa_supported(tapegrad::Isa::avx512)) { /* say the AVX-512 path was skipped */ }
#include <cstdint>

namespace tapegrad {

/// Kernel paths, from the most portable up.
enum class Isa : uint8_t {
  portable = 0,  ///< the code built with TAPEGRAD_ARCH_FLAGS only (AVX2 + FMA by default)
  avx2 = 1,      ///< AVX2 + FMA detected at run time, 256-bit vectors
  avx512 = 2,    ///< AVX-512F, 512-bit vectors (Adam's update today)
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

}  // namespace tapegrad
