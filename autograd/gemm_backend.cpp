// The GEMM backend setting, the per-shape rule, and the libxsmm path of kernels::gemm_raw (the OpenBLAS
// path is in ops/linalg.cpp, beside gemm_raw).
#include "autograd/gemm_backend.hpp"

#include <algorithm>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "autograd/env_setting.hpp"

#ifdef TAPEGRAD_HAVE_LIBXSMM
#include <libxsmm.h>
#endif
#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace tapegrad {
namespace {

// TAPEGRAD_GEMM and set_gemm_backend's setting.
detail::EnvSetting<GemmBackend, 3> g_backend({"TAPEGRAD_GEMM", "GEMM backend", "gemm_backend_name", "GemmBackend",
                                              {{{GemmBackend::automatic, "auto"},
                                                {GemmBackend::openblas, "openblas"},
                                                {GemmBackend::libxsmm, "libxsmm"}}}});

}  // namespace

std::string gemm_backend_name(GemmBackend backend) { return g_backend.name(backend); }

GemmBackend parse_gemm_backend(std::string_view name) { return g_backend.parse(name); }

bool libxsmm_available() {
#ifdef TAPEGRAD_HAVE_LIBXSMM
  return true;
#else
  return false;
#endif
}

void set_gemm_backend(GemmBackend backend) {
  if (backend == GemmBackend::libxsmm && !libxsmm_available())
    throw std::invalid_argument("set_gemm_backend(libxsmm): this tapegrad was built without libxsmm");
  g_backend.set(backend);
}

GemmBackend gemm_backend() {
  return g_backend.get(GemmBackend::automatic, [](GemmBackend backend) {
    if (backend == GemmBackend::libxsmm && !libxsmm_available())
      throw std::invalid_argument(
          "TAPEGRAD_GEMM=libxsmm, but this tapegrad was built without libxsmm "
          "(install libxsmm-dev and reconfigure, or unset TAPEGRAD_GEMM)");
  });
}

namespace kernels {

bool nt_transposed(int64_t m, int64_t n) { return m % 8 == 0 && m <= 32 && (m < n || n % 8 != 0); }

bool gemm_supported_by_libxsmm(int64_t m, int64_t n, int64_t k, bool /*ta*/, bool /*tb*/, double beta) {
  constexpr int64_t int_max = std::numeric_limits<int>::max();
  return libxsmm_available() && (beta == 0 || beta == 1) && m <= int_max && n <= int_max && k <= int_max;
}

GemmBackend gemm_choice(DType dtype, int64_t m, int64_t n, int64_t k, bool ta, bool tb, double beta) {
  const GemmBackend setting = gemm_backend();
  if (setting == GemmBackend::openblas || !gemm_supported_by_libxsmm(m, n, k, ta, tb, beta))
    return GemmBackend::openblas;
  if (setting == GemmBackend::libxsmm) return GemmBackend::libxsmm;
  // bench_gemm_shapes (README, "Performance"): libxsmm's unblocked kernels win on small products
  // (attention heads, the 10-class layer: 0.4–0.8× OpenBLAS's time) and on short-K products such as
  // the weight gradient at batch 32 (K = 32: 0.55–0.72×); from K = 64 with large m·n, and for every
  // K ≥ 256 product, OpenBLAS's packed kernels win (up to 2.5×). A transposed B costs a copy of B
  // (8 × 8 register blocks), which pays from m = 64, or from m = 16 when n ≥ 32: the causal
  // attention's 32-row tiles (32×32×32: 1.1 against OpenBLAS's 2.1 µs, 32×64×32: 2.1 against 3.6,
  // 16×64×64: 2.4 against 3.7); 8×128×128 (10.1 against 9.0) and the 10-class layer's 32×10×128
  // (6.2 against 3.5) lost with B copied, and run transposed instead (below).
  // A·Bᵀ whose libxsmm kernel runs 8 to 32 rows of one side per column (see nt_transposed): libxsmm,
  // with a transposed copy of that side only: 128×32×784 in 94 against OpenBLAS's 132 µs,
  // 1024×32×1024 954 against 1366, 32×128×3136 424 against 588, 8×512×512 138 against 166,
  // 10×32×128 1.7 against 3.7; OpenBLAS is as fast from 64 rows on (128×64×784 242 against 238,
  // 128×128×784 594 against 428) and faster when that side is not a multiple of 8 (32×10×3136 with
  // 10 rows: 164 against 79 µs). float32 only: in float64 (4 lanes) OpenBLAS ran 32×128×784 in 273
  // against 328 µs.
  const double volume = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (dtype == DType::f32 && tb && !ta) {
    const int64_t rows = nt_transposed(m, n) ? m : n;
    if (rows >= 8 && rows <= 32 && rows % 8 == 0 && volume <= double(1 << 25)) return GemmBackend::libxsmm;
  }
  const bool small = volume <= double(1 << 18) || (k <= 32 && volume <= double(1 << 22));
  if (tb && (m < 16 || (m < 64 && n < 32))) return GemmBackend::openblas;
  // ... and when B has fewer than 16 rows, not a multiple of 8 (the 10-class layer at batch 64 or
  // 128: libxsmm's kernel then runs part-empty vectors, 10.8 against 4.8 µs and 20.9 against 8.9)
  if (tb && n < 16 && n % 8 != 0) return GemmBackend::openblas;
  return small ? GemmBackend::libxsmm : GemmBackend::openblas;
}

namespace detail {
namespace {

/// dst [cols, rows] (row stride rows) = the transpose of src [rows, cols] (row stride ld).
template <class T>
void transpose_scalar(const T* src, int64_t ld, int64_t rows, int64_t cols, T* dst) {
  for (int64_t j = 0; j < rows; ++j)
    for (int64_t p = 0; p < cols; ++p) dst[p * rows + j] = src[j * ld + p];
}

/// transpose_scalar, in 8 × 8 register blocks for float on AVX2 (8 row loads, 24 shuffles, 8 row
/// stores per block; the attention tiles' k and v [64, 32] took a quarter of the fused attention's
/// time as scalar element copies, bench_nn's BM_SelfAttentionLayout), scalar at the edges.
template <class T>
void transpose_into(const T* src, int64_t ld, int64_t rows, int64_t cols, T* dst) {
#ifdef __AVX2__
  if constexpr (std::is_same_v<T, float>) {
    const int64_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
    for (int64_t j0 = 0; j0 < rows8; j0 += 8)
      for (int64_t p0 = 0; p0 < cols8; p0 += 8) {
        const float* s = src + j0 * ld + p0;
        __m256 r[8], t[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + i * ld);
        for (int i = 0; i < 8; i += 2) {
          t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
          t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
          r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
          r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
          r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
          r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        float* d = dst + p0 * rows + j0;
        for (int i = 0; i < 4; ++i) {
          _mm256_storeu_ps(d + i * rows, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
          _mm256_storeu_ps(d + (i + 4) * rows, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
        }
      }
    if (cols8 < cols) transpose_scalar(src + cols8, ld, rows, cols - cols8, dst + cols8 * rows);
    if (rows8 < rows)
      for (int64_t j = rows8; j < rows; ++j)
        for (int64_t p = 0; p < cols8; ++p) dst[p * rows + j] = src[j * ld + p];
    return;
  }
#endif
  transpose_scalar(src, ld, rows, cols, dst);
}

}  // namespace

template <class T>
bool gemm_libxsmm(const T* a, int64_t lda_, const T* b, int64_t ldb_, T* c, int64_t ldc_, int64_t m, int64_t n,
                  int64_t k, bool ta, bool tb, T beta) {
  if (!gemm_supported_by_libxsmm(m, n, k, ta, tb, static_cast<double>(beta))) return false;
#ifdef TAPEGRAD_HAVE_LIBXSMM
  static std::once_flag init;
  std::call_once(init, [] { libxsmm_init(); });
  // Row-major C[m, n] = op(A)·op(B) is column-major Cᵀ[n, m] = op(B)ᵀ·op(A)ᵀ: libxsmm's A is our B
  // and its B is our A, transposed when ta. libxsmm 1.17 has no kernel for a transposed A (our tb):
  // B [n, k] is then transposed into a per-thread scratch [k, n] first (O(n·k) against the
  // product's O(m·n·k)). When nt_transposed(m, n) (e.g. a batch of 32 rows against a 128 × 784
  // weight) the product runs transposed instead, Cᵀ[n, m] = B·Aᵀ, so that the copy is of A (m·k),
  // and Cᵀ is transposed into C (m·n): the seed MLP's 32×128×784 forward took 94 µs so against 133
  // µs copying the weight (OpenBLAS: 123 µs; README, "Small GEMMs").
  if (tb && !ta && nt_transposed(m, n)) {
    thread_local std::vector<T> ct, cm;
    ct.resize(static_cast<size_t>(n * m));
    if (!gemm_libxsmm(b, ldb_, a, lda_, ct.data(), m, n, m, k, false, true, T(0))) return false;
    cm.resize(static_cast<size_t>(m * n));
    transpose_into(ct.data(), m, n, m, cm.data());  // cm [m, n] = ctᵀ
    for (int64_t r = 0; r < m; ++r) {
      T* cr = c + r * ldc_;
      const T* tr = cm.data() + r * n;
      if (beta == T(0)) std::copy_n(tr, n, cr);
      else
        for (int64_t j = 0; j < n; ++j) cr[j] += tr[j];  // beta is 1 (gemm_supported_by_libxsmm)
    }
    return true;
  }
  if (tb) {
    thread_local std::vector<T> scratch;
    scratch.resize(static_cast<size_t>(n * k));
    transpose_into(b, ldb_, n, k, scratch.data());
    b = scratch.data();
    ldb_ = n;
  }
  // Row strides of row-major operands are the leading dimensions of their column-major views.
  const libxsmm_blasint mm = static_cast<libxsmm_blasint>(n), nn = static_cast<libxsmm_blasint>(m),
                        kk = static_cast<libxsmm_blasint>(k);
  const libxsmm_blasint lda = static_cast<libxsmm_blasint>(ldb_), ldb = static_cast<libxsmm_blasint>(lda_),
                        ldc = static_cast<libxsmm_blasint>(ldc_);
  const T one = T(1);
  const int flags = (ta ? LIBXSMM_GEMM_FLAG_TRANS_B : 0) | (beta == T(0) ? LIBXSMM_GEMM_FLAG_BETA_0 : 0);
  // libxsmm keeps generated kernels in its own thread-safe registry: a second dispatch of a shape
  // is a lookup. A null kernel (JIT unavailable on this CPU) leaves the product to OpenBLAS.
  if constexpr (std::is_same_v<T, float>) {
    libxsmm_smmfunction kernel = libxsmm_smmdispatch(mm, nn, kk, &lda, &ldb, &ldc, &one, &beta, &flags, nullptr);
    if (kernel == nullptr) return false;
    kernel(b, a, c);
  } else {
    libxsmm_dmmfunction kernel = libxsmm_dmmdispatch(mm, nn, kk, &lda, &ldb, &ldc, &one, &beta, &flags, nullptr);
    if (kernel == nullptr) return false;
    kernel(b, a, c);
  }
  return true;
#else
  (void)a, (void)b, (void)c, (void)lda_, (void)ldb_, (void)ldc_;
  return false;
#endif
}
template bool gemm_libxsmm<float>(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, int64_t,
                                  int64_t, bool, bool, float);
template bool gemm_libxsmm<double>(const double*, int64_t, const double*, int64_t, double*, int64_t, int64_t, int64_t,
                                   int64_t, bool, bool, double);

}  // namespace detail
}  // namespace kernels
}  // namespace tapegrad
