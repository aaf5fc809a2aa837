#pragma once
/// \file blas.hpp
/// OpenBLAS settings. tapegrad runs BLAS single-threaded by default (small training gemms lose
/// more to thread hand-offs than they gain; set OPENBLAS_NUM_THREADS or call set_num_threads to
/// change it). It also repairs one known misdetection: OpenBLAS 0.3.21 (Debian 12) does not
/// recognise some recent Xeons and falls back to its generic "Prescott" (SSE3) kernels, which run
/// sgemm about 2x slower; when that happens on a CPU with AVX2 and FMA, tapegrad re-selects the
/// Haswell (AVX2) kernels. A user's own OPENBLAS_CORETYPE is always respected.
#include <string>

namespace tapegrad {

/// Applies the settings above once; called by the first matmul. Idempotent.
void configure_blas();
/// Number of BLAS threads.
void set_num_threads(int n);
int num_threads();
/// The OpenBLAS kernel family in use (e.g. "Haswell").
std::string blas_core_name();

}  // namespace tapegrad
