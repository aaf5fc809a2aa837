// Matrix products. One primitive, gemm(a, b, transpose_a, transpose_b) on 2-D or batched 3-D
// operands, runs BLAS sgemm/dgemm (or libxsmm's small-GEMM kernels, autograd/gemm_backend.hpp); its gradient is two
// more gemm calls with the transposes folded into flags, so backward never copies a transpose. matmul is a composite
// over gemm, reshape and expand, and gets its gradient (including broadcast batch dims) for free.
#include <algorithm>
#include <type_traits>
#include <xtensor-blas/xblas.hpp>  // also declares cblas_sgemm / cblas_dgemm (xflens; not OpenBLAS's cblas.h, which conflicts)

#include "autograd/blas.hpp"
#include "autograd/functions.hpp"
#include "autograd/gemm_backend.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "autograd/parallel.hpp"

namespace tapegrad {
namespace kernels {

namespace {

/// The OpenBLAS path: cblas sgemm/dgemm on row-major operands with row strides (k, m, n > 0).
template <class T>
void gemm_openblas(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t m, int64_t n, int64_t k,
                   bool ta, bool tb, T beta) {
  configure_blas();
  if (beta == T(0)) {
    // OpenBLAS 0.3.21 clears C for beta = 0 with scalar stores (sgemm_beta_ZEN: 4 % of a char-GPT
    // iteration); a vectorised fill and beta = 1 give the same C, and the kernel then skips that pass.
    if (ldc == n) std::fill_n(c, m * n, T(0));
    else
      for (int64_t r = 0; r < m; ++r) std::fill_n(c + r * ldc, n, T(0));
    beta = T(1);
  }
  auto i = [](int64_t v) { return static_cast<int>(v); };
  const auto ota = ta ? CblasTrans : CblasNoTrans, otb = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ota, otb, i(m), i(n), i(k), 1.0f, a, i(lda), b, i(ldb), beta, c, i(ldc));
  else
    cblas_dgemm(CblasRowMajor, ota, otb, i(m), i(n), i(k), 1.0, a, i(lda), b, i(ldb), beta, c, i(ldc));
}

/// Multiply-adds per thread below which an OpenBLAS product runs on one thread (2²¹, about 40 µs
/// at 50 GFLOP/s: the pool's hand-off, a few µs, stays under a tenth; the seed MLP's batch-32
/// products stay serial).
constexpr double kGemmGrain = double(1 << 21);
/// Rows (or columns) of C per split unit (a multiple of every register block).
constexpr int64_t kGemmUnit = 64;

/// The bands a product splits into over tapegrad's threads (1: it runs unsplit): where products may
/// split (parallel::products_may_split), a product of at least two grains, at most one band per
/// thread and per unit.
int64_t product_parts(int64_t m, int64_t n, int64_t k) {
  if (!parallel::products_may_split()) return 1;
  const int64_t units = (std::max(m, n) + kGemmUnit - 1) / kGemmUnit;
  const double volume = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  return std::max<int64_t>(1, std::min<int64_t>({get_num_threads(), units, static_cast<int64_t>(volume / kGemmGrain)}));
}

/// A product over tapegrad's threads: split into `parts` (product_parts) contiguous bands of whole
/// units of C's rows (or columns, when C is wider than tall), and band(a, b, c, rows, cols) runs
/// each band's product on one thread (single-threaded OpenBLAS, or libxsmm). OpenBLAS's own pool
/// stays at one thread (blas.hpp): its workers spin-wait between calls and took a core from the
/// next kernel. The partition depends only on the shape and the thread count, so a product repeats
/// bitwise at a fixed count; across counts the last bits may differ (OpenBLAS's kernel computes a
/// band's last rows with another register block than the same rows unsplit).
template <class T, class Band>
void split_product(int64_t parts, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t m,
                   int64_t n, bool ta, bool tb, Band band) {
  const bool by_rows = m >= n;
  const int64_t extent = by_rows ? m : n, units = (extent + kGemmUnit - 1) / kGemmUnit;
  if (parts < 2) {
    band(a, b, c, m, n);
    return;
  }
  parallel::parallel_for(0, units, (units + parts - 1) / parts, [&](int64_t u0, int64_t u1) {
    const int64_t lo = u0 * kGemmUnit, len = std::min(extent, u1 * kGemmUnit) - lo;
    if (by_rows)  // rows lo.. of op(A) and C
      band(ta ? a + lo : a + lo * lda, b, c + lo * ldc, len, n);
    else  // columns lo.. of op(B) and C
      band(a, tb ? b + lo * ldb : b + lo, c + lo, m, len);
  });
}

}  // namespace

template <class T>
bool gemm_strided_on(GemmBackend backend, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc,
                     int64_t m, int64_t n, int64_t k, bool ta, bool tb, T beta) {
  if (backend == GemmBackend::automatic)
    backend = gemm_choice(dtype_of<T>(), m, n, k, ta, tb, static_cast<double>(beta));
  if (backend == GemmBackend::libxsmm && !gemm_supported_by_libxsmm(m, n, k, ta, tb, static_cast<double>(beta)))
    return false;
  if (m == 0 || n == 0) return true;
  if (k == 0) {  // C = beta·C: no product to run (BLAS would read lda/ldb of 0)
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) c[r * ldc + j] = beta == T(0) ? T(0) : beta * c[r * ldc + j];
    return true;
  }
  const bool xsmm = backend == GemmBackend::libxsmm;
  const int64_t parts = product_parts(m, n, k);
  if (xsmm && parts < 2) return detail::gemm_libxsmm(a, lda, b, ldb, c, ldc, m, n, k, ta, tb, beta);
  split_product(parts, a, lda, b, ldb, c, ldc, m, n, ta, tb, [&](const T* ab, const T* bb, T* cb, int64_t mb, int64_t nb) {
    // A split libxsmm product: a band libxsmm declines (its JIT has no kernel for this CPU, then
    // for every band alike) runs on OpenBLAS, as gemm_strided would run the whole product.
    if (!xsmm || !detail::gemm_libxsmm(ab, lda, bb, ldb, cb, ldc, mb, nb, k, ta, tb, beta))
      gemm_openblas(ab, lda, bb, ldb, cb, ldc, mb, nb, k, ta, tb, beta);
  });
  return true;
}
template bool gemm_strided_on<float>(GemmBackend, const float*, int64_t, const float*, int64_t, float*, int64_t,
                                     int64_t, int64_t, int64_t, bool, bool, float);
template bool gemm_strided_on<double>(GemmBackend, const double*, int64_t, const double*, int64_t, double*, int64_t,
                                      int64_t, int64_t, int64_t, bool, bool, double);

template <class T>
bool gemm_raw_on(GemmBackend backend, const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                 T beta) {
  return gemm_strided_on(backend, a, ta ? m : k, b, tb ? k : n, c, n, m, n, k, ta, tb, beta);
}
template bool gemm_raw_on<float>(GemmBackend, const float*, const float*, float*, int64_t, int64_t, int64_t, bool, bool,
                                 float);
template bool gemm_raw_on<double>(GemmBackend, const double*, const double*, double*, int64_t, int64_t, int64_t, bool,
                                  bool, double);

template <class T>
void gemm_strided(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t m, int64_t n, int64_t k,
                  bool ta, bool tb, T beta) {
  // The choice is openblas or a libxsmm product libxsmm supports; libxsmm can still decline when
  // its JIT has no kernel for this CPU, and then OpenBLAS runs it.
  if (!gemm_strided_on(GemmBackend::automatic, a, lda, b, ldb, c, ldc, m, n, k, ta, tb, beta))
    gemm_strided_on(GemmBackend::openblas, a, lda, b, ldb, c, ldc, m, n, k, ta, tb, beta);
}
template void gemm_strided<float>(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, int64_t,
                                  int64_t, bool, bool, float);
template void gemm_strided<double>(const double*, int64_t, const double*, int64_t, double*, int64_t, int64_t, int64_t,
                                   int64_t, bool, bool, double);

template <class T>
void gemm_raw(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool ta, bool tb, T beta) {
  gemm_strided(a, ta ? m : k, b, tb ? k : n, c, n, m, n, k, ta, tb, beta);
}
template void gemm_raw<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool, bool, float);
template void gemm_raw<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool, bool, double);

}  // namespace kernels

Tensor gemm(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  kernels::check_same_dtype("gemm", a, b);
  const bool batched = a.dim() == 3;
  if (!((a.dim() == 2 && b.dim() == 2) || (a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0))))
    throw ShapeError("tapegrad::gemm: needs two 2-D operands or two 3-D operands with equal batch, got " +
                     to_string(a.shape()) + " and " + to_string(b.shape()));
  const int64_t batch = batched ? a.size(0) : 1;
  const int64_t ar = a.size(-2), ac = a.size(-1), br = b.size(-2), bc = b.size(-1);
  const int64_t k_a = ta ? ar : ac, k_b = tb ? bc : br;
  if (k_a != k_b)
    throw ShapeError("tapegrad::matmul: inner dimensions differ: " + to_string(a.shape()) + (ta ? "ᵀ" : "") + " · " +
                     to_string(b.shape()) + (tb ? "ᵀ" : "") + " (" + std::to_string(k_a) + " vs " +
                     std::to_string(k_b) + ")");
  const int64_t m = ta ? ac : ar, n = tb ? br : bc;
  Shape out_shape = batched ? Shape{batch, m, n} : Shape{m, n};
  Tensor result = Tensor::empty(out_shape, a.dtype());
  kernels::dispatch(a.dtype(), "gemm", [&](auto z) {
    using T = decltype(z);
    T* c = result.mutable_data<T>();
    if (k_a == 0) {
      std::fill_n(c, result.numel(), T(0));
      return;
    }
    if (m == 0 || n == 0) return;
    for (int64_t i = 0; i < batch; ++i)
      kernels::gemm_raw<T>(a.data<T>() + i * ar * ac, b.data<T>() + i * br * bc, c + i * m * n, m, n, k_a, ta, tb,
                           T(0));
  });
  return record("gemm", result, {a, b}, save_for_backward(a, b), [ta, tb](const BackwardContext& ctx) -> Grads {
    const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
    const Tensor& g = ctx.grad;
    Tensor ga, gb;
    // C = op(A)·op(B):  dA = G·op(B)ᵀ (or its transpose),  dB = op(A)ᵀ·G (or its transpose)
    if (ctx.needs(0)) ga = ta ? gemm(b, g, tb, true) : gemm(g, b, false, !tb);
    if (ctx.needs(1)) gb = tb ? gemm(g, a, true, ta) : gemm(a, g, !ta, false);
    return {ga, gb};
  });
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  kernels::check_same_dtype("matmul", a, b);
  if (a.dim() == 0 || b.dim() == 0)
    throw ShapeError("tapegrad::matmul: both operands need at least one dimension, got " + to_string(a.shape()) +
                     " and " + to_string(b.shape()));
  // 1-D operands: promote to a matrix, multiply, then drop the added dimension (numpy rules).
  if (a.dim() == 1 && b.dim() == 1) {
    if (a.size(0) != b.size(0))
      throw ShapeError("tapegrad::matmul: dot product of shapes " + to_string(a.shape()) + " and " +
                       to_string(b.shape()));
    return reshape(gemm(reshape(a, {1, a.size(0)}), reshape(b, {b.size(0), 1})), Shape{});
  }
  // (checked here, so that the message shows the shapes given, not the promoted ones)
  if (a.size(-1) != b.size(b.dim() == 1 ? 0 : -2))
    throw ShapeError("tapegrad::matmul: inner dimensions differ: " + to_string(a.shape()) + " · " +
                     to_string(b.shape()));
  if (a.dim() == 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1) return squeeze(matmul(a, unsqueeze(b, -1)), -1);
  if (a.dim() == 2 && b.dim() == 2) return gemm(a, b);
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  // [..., M, K] · [K, N]: fold the batch into rows, one gemm call.
  if (b.dim() == 2) {
    Shape out = batch_a;
    out.push_back(m);
    out.push_back(n);
    return reshape(gemm(reshape(a, {batch_a.numel() * m, k}), b), out);  // not {-1, k}: k may be 0
  }
  Shape batch;
  try {
    batch = kernels::broadcast_shapes("matmul", batch_a, batch_b);
  } catch (const ShapeError&) {
    throw ShapeError("tapegrad::matmul: batch dimensions of " + to_string(a.shape()) + " and " + to_string(b.shape()) +
                     " cannot be broadcast");
  }
  Shape sa = batch, sb = batch, out = batch;
  sa.push_back(m), sa.push_back(k);
  sb.push_back(k), sb.push_back(n);
  out.push_back(m), out.push_back(n);
  const int64_t nb = batch.numel();
  Tensor a3 = reshape(a.shape() == sa ? a : expand(a, sa), {nb, m, k});
  Tensor b3 = reshape(b.shape() == sb ? b : expand(b, sb), {nb, k, n});
  return reshape(gemm(a3, b3), out);
}

}  // namespace tapegrad
