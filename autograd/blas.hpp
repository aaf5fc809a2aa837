#pragma once
/// \file blas.hpp
/// OpenBLAS settings. OpenBLAS runs on one thread: products large enough to split run as bands on
/// tapegrad's intra-op threads instead (autograd/parallel.hpp: set_num_threads,
/// TAPEGRAD_NUM_THREADS; 1 by default — small training gemms lose more to thread hand-offs than
/// they gain), so one pool, which sleeps between jobs, serves every kernel; OpenBLAS's own workers
/// spin-wait between calls. With TAPEGRAD_NUM_THREADS unset, a user's OPENBLAS_NUM_THREADS or
/// OMP_NUM_THREADS decides BLAS's count until set_num_threads is called. It also repairs one known misdetection: OpenBLAS 0.3.21 (Debian 12) does not
/// recognise some recent Xeons and falls back to its generic "Prescott" (SSE3) kernels, which run
/// sgemm 3-5x slower; when that happens, tapegrad re-selects the SkylakeX kernels on a CPU with
/// AVX-512 (F, BW, VL, DQ) or the Haswell kernels on one with AVX2 and FMA. Measured here (min of 7
/// runs, µs, Prescott / Haswell / SkylakeX): [32,784]·[128,784]ᵀ 321 / 116 / 83;
/// [256,784]·[128,784]ᵀ 2835 / 1016 / 549. A user's own OPENBLAS_CORETYPE is always respected.
#include <string>

#include "autograd/parallel.hpp"

namespace tapegrad {

/// Applies the settings above once; called by the first matmul. Idempotent.
void configure_blas();
/// The number of threads OpenBLAS itself uses now: 1 once tapegrad has set it (set_num_threads,
/// TAPEGRAD_NUM_THREADS, or no user setting), else the user's OPENBLAS_NUM_THREADS / OMP_NUM_THREADS.
int blas_num_threads();
/// The OpenBLAS kernel family in use (e.g. "Haswell").
std::string blas_core_name();

/// Flush-to-zero / denormals-are-zero for this thread (like torch.set_flush_denormal): values below
/// 1.2e-38 (float) are treated as 0. Denormal arithmetic costs ~100 cycles per operation; state that
/// decays geometrically — Adam's moments for inputs that are always 0, such as MNIST's border
/// pixels — ends up there after a few hundred steps and made an Adam step 8x slower. Returns
/// whether the CPU supports it (x86 SSE).
bool set_flush_denormal(bool enabled);
/// Whether this thread flushes denormals now.
bool flush_denormal();

/// RAII: flush denormals in a scope (every optimizer step runs under one).
class FlushDenormalGuard {
 public:
  FlushDenormalGuard() : prev_(flush_denormal()) { set_flush_denormal(true); }
  ~FlushDenormalGuard() { set_flush_denormal(prev_); }
  FlushDenormalGuard(const FlushDenormalGuard&) = delete;
  FlushDenormalGuard& operator=(const FlushDenormalGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace tapegrad
