#pragma once
/// \file gemm_backend.hpp
/// Which kernel library runs a matrix product. Every float32/float64 product of tapegrad (gemm,
/// matmul, linear, conv2d's im2col gemms) goes through kernels::gemm_raw, which picks, per shape,
/// between OpenBLAS (blocked, packed: best for large products) and libxsmm's JIT-generated small-GEMM
/// kernels (unblocked, no packing: best when the product is small or K is short). libxsmm is an
/// optional build dependency (Debian libxsmm-dev); without it every product runs on OpenBLAS.
///
/// The choice can be forced, for every thread, by the environment variable
/// `TAPEGRAD_GEMM=openblas|libxsmm|auto` (read once, at the first product) or by set_gemm_backend().
/// libxsmm 1.17 generates no kernel for a transposed A in its column-major terms, which is a
/// transposed B (`tb`) in tapegrad's row-major terms: its path copies B transposed into a per-thread
/// scratch buffer first. Products whose beta is not 0 or 1, and products with a dimension above
/// 2³¹ − 1, have no libxsmm kernel and run on OpenBLAS even when libxsmm is forced
/// (kernels::gemm_supported_by_libxsmm says which). Thread-safe: the setting is atomic and libxsmm's
/// kernel registry is thread-safe.
#include <cstdint>
#include <string>
#include <string_view>

#include "autograd/dtype.hpp"

namespace tapegrad {

/// `automatic` picks per shape (gemm_choice); the others force one library where it can run.
enum class GemmBackend {
  automatic,  ///< per product: libxsmm for small ones it supports, OpenBLAS otherwise (gemm_choice)
  openblas,   ///< every product on OpenBLAS
  libxsmm,    ///< libxsmm where it has a kernel (see above); only in builds with libxsmm
};

/// "auto", "openblas" or "libxsmm".
std::string gemm_backend_name(GemmBackend backend);
/// The inverse of gemm_backend_name; std::invalid_argument naming the accepted values otherwise.
GemmBackend parse_gemm_backend(std::string_view name);

/// Whether this build has libxsmm (found by CMake at configure time).
bool libxsmm_available();

/// The backend setting used by later products, in every thread. Forcing libxsmm in a build without
/// it throws std::invalid_argument (nothing changes).
void set_gemm_backend(GemmBackend backend);
/// The current setting: set_gemm_backend's last value, or TAPEGRAD_GEMM (read on the first call;
/// unset means automatic). A bad TAPEGRAD_GEMM value, or libxsmm in a build without it, throws
/// std::invalid_argument naming the variable, at every call until it is fixed or overridden.
GemmBackend gemm_backend();

/// RAII: a backend setting for a scope (tests, benchmarks). Not for concurrent use from threads that
/// each want a different backend: the setting is process-wide.
class GemmBackendGuard {
 public:
  /// set_gemm_backend(backend) until the guard is destroyed, which restores the previous setting.
  /// Throws as set_gemm_backend (nothing changes then).
  explicit GemmBackendGuard(GemmBackend backend) : prev_(gemm_backend()) { set_gemm_backend(backend); }
  ~GemmBackendGuard() { set_gemm_backend(prev_); }
  GemmBackendGuard(const GemmBackendGuard&) = delete;
  GemmBackendGuard& operator=(const GemmBackendGuard&) = delete;

 private:
  GemmBackend prev_;
};

namespace kernels {

/// Whether libxsmm can run C[m, n] = op(A)·op(B) + beta·C (row-major, as gemm_raw): libxsmm is in
/// the build, beta is 0 or 1, and m, n, k fit libxsmm's 32-bit int (a transposed B is copied, see above).
bool gemm_supported_by_libxsmm(int64_t m, int64_t n, int64_t k, bool ta, bool tb, double beta);

/// Whether libxsmm runs A·Bᵀ (C [m, n]) transposed, as Cᵀ = B·Aᵀ: when m is a multiple of 8 up to
/// 32 and smaller than n, or n is not a multiple of 8. Its kernel then works on m rows of A per
/// column (copied transposed) instead of n rows of B, which is cheaper for a batch of rows against
/// a weight, and vectorises whole when n is not a multiple of 8 (10 classes). From 64 rows the
/// copy of A and the transpose back cost more than they save (128×10×128: 24 against 14 µs).
bool nt_transposed(int64_t m, int64_t n);

/// The library gemm_raw runs this product on under the current setting: openblas or libxsmm, never
/// automatic. Under `automatic`, libxsmm runs a product it supports when it is a float32 A·Bᵀ whose
/// copied side (nt_transposed) has 8, 16, 24 or 32 rows and m·n·k ≤ 2²⁵; otherwise (float32 and
/// float64 alike) when m·n·k ≤ 2¹⁸, or k ≤ 32 and m·n·k ≤ 2²², and, for a transposed B, m ≥ 64 or
/// m ≥ 16 with n ≥ 32, and n ≥ 16 or a multiple of 8; the bounds come from
/// bench/bench_gemm_shapes.cpp (README, "Performance").
GemmBackend gemm_choice(DType dtype, int64_t m, int64_t n, int64_t k, bool ta, bool tb, double beta);

/// gemm_raw on one library, bypassing the choice (benchmarks and tests). `automatic` is gemm_raw.
/// Returns false, computing nothing, when `backend` is libxsmm and it cannot run the product
/// (gemm_supported_by_libxsmm).
template <class T>
bool gemm_raw_on(GemmBackend backend, const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                 T beta);
/// gemm_raw_on with row strides (kernels::gemm_strided's operands).
template <class T>
bool gemm_strided_on(GemmBackend backend, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t m,
                     int64_t n, int64_t k, bool ta, bool tb, T beta);

namespace detail {
/// The libxsmm path of gemm_strided_on: false, computing nothing, when gemm_supported_by_libxsmm is not.
template <class T>
bool gemm_libxsmm(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t m, int64_t n, int64_t k,
                  bool ta, bool tb, T beta);
}  // namespace detail

}  // namespace kernels
}  // namespace tapegrad
