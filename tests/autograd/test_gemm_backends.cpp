// kernels::gemm_raw's two backends (OpenBLAS, libxsmm) and the per-shape choice between them, against a
// naive long-double reference: every transpose combination, beta 0 and 1, degenerate and odd shapes,
// float32 and float64; the linalg ops' gradchecks with each backend forced; two threads generating
// libxsmm kernels for new shapes at once. In a build without libxsmm the libxsmm cases say so and
// check only that forcing it is refused.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "autograd/autograd.hpp"
#include "autograd/gemm_backend.hpp"
#include "autograd/kernels.hpp"
#include "autograd/registry_check.hpp"
#ifdef TAPEGRAD_TESTS_HAVE_NN
#include "nn/functional.hpp"
#endif

using namespace tapegrad;

namespace {

struct Dims {
  int64_t m, n, k;
};

template <class T>
std::vector<T> pattern(int64_t count, int seed) {
  std::vector<T> v(static_cast<size_t>(count));
  for (size_t i = 0; i < v.size(); ++i) v[i] = T(std::sin(0.37 * static_cast<double>(i) + seed) + 0.1 * seed);
  return v;
}

/// max over C of |c − ref| / (Σ_p |op(A)_ip·op(B)_pj| + |beta·c0|): the error relative to the
/// magnitude the sum is built from (no division by a cancelled value).
template <class T>
double relative_error(const std::vector<T>& a, const std::vector<T>& b, const std::vector<T>& c0,
                      const std::vector<T>& c, Dims d, bool ta, bool tb, T beta) {
  double worst = 0;
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t j = 0; j < d.n; ++j) {
      long double sum = 0, scale = 0;
      for (int64_t p = 0; p < d.k; ++p) {
        const long double x = ta ? a[static_cast<size_t>(p * d.m + i)] : a[static_cast<size_t>(i * d.k + p)];
        const long double y = tb ? b[static_cast<size_t>(j * d.k + p)] : b[static_cast<size_t>(p * d.n + j)];
        sum += x * y;
        scale += std::fabs(x * y);
      }
      const long double before = c0[static_cast<size_t>(i * d.n + j)];
      if (beta != T(0)) {
        sum += beta * before;
        scale += std::fabs(beta * before);
      }
      const long double err = std::fabs(c[static_cast<size_t>(i * d.n + j)] - sum);
      worst = std::max(worst, static_cast<double>(scale > 0 ? err / scale : err));
    }
  return worst;
}

const std::vector<Dims> kShapes = {{1, 1, 1},      {0, 3, 2},     {3, 0, 2},    {3, 2, 0},    {1, 5, 7},
                                   {7, 1, 5},      {5, 7, 1},     {17, 13, 11}, {33, 65, 31}, {64, 32, 64},
                                   {128, 784, 32}, {32, 10, 128}, {3, 129, 300}, {16, 40, 24},  {8, 13, 5},
                                   {24, 130, 70}};

template <class T>
void check_backend(GemmBackend backend, double tolerance) {
  for (const Dims& d : kShapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (T beta : {T(0), T(1)}) {
          INFO(gemm_backend_name(backend)
               << " m=" << d.m << " n=" << d.n << " k=" << d.k << " ta=" << ta << " tb=" << tb << " beta=" << beta);
          const auto a = pattern<T>(d.m * d.k, 1), b = pattern<T>(d.k * d.n, 2), c0 = pattern<T>(d.m * d.n, 3);
          std::vector<T> c = c0;
          if (beta == T(0)) std::fill(c.begin(), c.end(), std::nan(""));  // beta 0 must not read C
          REQUIRE(kernels::gemm_raw_on<T>(backend, a.data(), b.data(), c.data(), d.m, d.n, d.k, ta, tb, beta));
          CHECK(relative_error(a, b, c0, c, d, ta, tb, beta) <= tolerance);
        }
}

}  // namespace

TEST_CASE("gemm backends: OpenBLAS, libxsmm and the automatic choice against a naive product") {
  std::vector<GemmBackend> backends = {GemmBackend::openblas, GemmBackend::automatic};
  if (libxsmm_available())
    backends.push_back(GemmBackend::libxsmm);
  else
    MESSAGE("libxsmm path skipped: this tapegrad was built without libxsmm");
  for (GemmBackend backend : backends) {
    check_backend<float>(backend, 1e-5);
    check_backend<double>(backend, 1e-12);
  }
}

TEST_CASE("gemm backends: the automatic rule's bounds") {
  if (!libxsmm_available()) {
    MESSAGE("skipped: this tapegrad was built without libxsmm (every product runs on OpenBLAS)");
    CHECK(kernels::gemm_choice(DType::f32, 32, 32, 32, false, true, 0.0) == GemmBackend::openblas);
    return;
  }
  GemmBackendGuard guard(GemmBackend::automatic);
  auto choice = [](int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
    return kernels::gemm_choice(DType::f32, m, n, k, ta, tb, 0.0);
  };
  // small products and short K: libxsmm; large ones: OpenBLAS
  CHECK(choice(64, 32, 64, false, false) == GemmBackend::libxsmm);
  CHECK(choice(128, 784, 32, true, false) == GemmBackend::libxsmm);
  CHECK(choice(768, 384, 128, false, true) == GemmBackend::openblas);
  CHECK(choice(256, 256, 256, false, false) == GemmBackend::openblas);
  // a transposed B: from m = 64, or m = 16 with n = 32 (the causal attention's 32-row tiles)
  CHECK(choice(64, 64, 32, false, true) == GemmBackend::libxsmm);
  CHECK(choice(32, 32, 32, false, true) == GemmBackend::libxsmm);
  CHECK(choice(16, 64, 64, false, true) == GemmBackend::libxsmm);
  CHECK(choice(8, 128, 128, false, false) == GemmBackend::libxsmm);
  // A·Bᵀ whose copied side (nt_transposed) has 8–32 rows, a multiple of 8: libxsmm, up to 2²⁵
  CHECK(kernels::nt_transposed(32, 128));  // a batch of 32 against a weight: Cᵀ = B·Aᵀ
  CHECK(kernels::nt_transposed(32, 10));   // 10 columns would vectorise poorly
  CHECK_FALSE(kernels::nt_transposed(128, 32));
  CHECK_FALSE(kernels::nt_transposed(10, 32));
  CHECK_FALSE(kernels::nt_transposed(128, 10));  // copying 128 rows of A costs more
  CHECK(choice(32, 128, 784, false, true) == GemmBackend::libxsmm);
  CHECK(choice(32, 10, 128, false, true) == GemmBackend::libxsmm);
  CHECK(choice(32, 10, 3136, false, true) == GemmBackend::libxsmm);
  CHECK(choice(1024, 32, 1024, false, true) == GemmBackend::libxsmm);
  CHECK(choice(8, 128, 128, false, true) == GemmBackend::libxsmm);
  CHECK(choice(4, 128, 784, false, true) == GemmBackend::openblas);
  CHECK(choice(64, 128, 784, false, true) == GemmBackend::openblas);
  CHECK(choice(32, 1024, 2048, false, true) == GemmBackend::openblas);  // beyond 2²⁵
  CHECK(kernels::gemm_choice(DType::f64, 32, 128, 784, false, true, 0.0) == GemmBackend::openblas);  // float32 only
  CHECK(choice(64, 10, 128, false, true) == GemmBackend::openblas);  // 10 rows of B, not copied: part-empty vectors
  CHECK(choice(128, 10, 128, false, true) == GemmBackend::openblas);
}

TEST_CASE("gemm backends: libxsmm's transposed A·Bᵀ with row strides and beta 0 or 1") {
  if (!libxsmm_available()) {
    MESSAGE("skipped: this tapegrad was built without libxsmm");
    return;
  }
  // C [m, n] = A [m, k]·B [n, k]ᵀ inside larger row-major buffers (strides lda > k, ldb > k, ldc > n)
  for (const Dims d : {Dims{16, 40, 24}, Dims{32, 10, 50}, Dims{8, 9, 3}})
    for (float beta : {0.f, 1.f}) {
      INFO("m=" << d.m << " n=" << d.n << " k=" << d.k << " beta=" << beta);
      REQUIRE(kernels::nt_transposed(d.m, d.n));
      const int64_t lda = d.k + 3, ldb = d.k + 5, ldc = d.n + 7;
      const auto a = pattern<float>(d.m * lda, 1), b = pattern<float>(d.n * ldb, 2), c0 = pattern<float>(d.m * ldc, 3);
      std::vector<float> c = c0;
      REQUIRE(kernels::gemm_strided_on<float>(GemmBackend::libxsmm, a.data(), lda, b.data(), ldb, c.data(), ldc, d.m,
                                              d.n, d.k, false, true, beta));
      double worst = 0;
      for (int64_t i = 0; i < d.m; ++i)
        for (int64_t j = 0; j < ldc; ++j) {
          const float got = c[static_cast<size_t>(i * ldc + j)], before = c0[static_cast<size_t>(i * ldc + j)];
          if (j >= d.n) {  // outside C: untouched
            CHECK(got == before);
            continue;
          }
          long double sum = beta * static_cast<long double>(before), scale = std::fabs(sum);
          for (int64_t p = 0; p < d.k; ++p) {
            const long double x = a[static_cast<size_t>(i * lda + p)], y = b[static_cast<size_t>(j * ldb + p)];
            sum += x * y;
            scale += std::fabs(x * y);
          }
          worst = std::max(worst, static_cast<double>(std::fabs(got - sum) / scale));
        }
      CHECK(worst <= 1e-5);
    }
}

TEST_CASE("gemm backends: gemm_raw follows the forced setting") {
  const Dims d{9, 7, 5};
  const auto a = pattern<float>(d.m * d.k, 1), b = pattern<float>(d.k * d.n, 2), c0 = pattern<float>(d.m * d.n, 3);
  std::vector<GemmBackend> settings = {GemmBackend::openblas, GemmBackend::automatic};
  if (libxsmm_available()) settings.push_back(GemmBackend::libxsmm);
  for (GemmBackend setting : settings) {
    GemmBackendGuard guard(setting);
    CHECK(gemm_backend() == setting);
    const GemmBackend chosen = kernels::gemm_choice(DType::f32, d.m, d.n, d.k, true, false, 1.0);
    CHECK(chosen != GemmBackend::automatic);
    if (setting != GemmBackend::automatic) CHECK(chosen == setting);
    std::vector<float> c = c0;
    kernels::gemm_raw<float>(a.data(), b.data(), c.data(), d.m, d.n, d.k, true, false, 1.f);
    CHECK(relative_error(a, b, c0, c, d, true, false, 1.f) <= 1e-5);
  }
  // beta other than 0 and 1 has no libxsmm kernel: OpenBLAS runs it even when libxsmm is forced.
  if (libxsmm_available()) {
    GemmBackendGuard guard(GemmBackend::libxsmm);
    CHECK(kernels::gemm_choice(DType::f32, d.m, d.n, d.k, false, false, 0.5) == GemmBackend::openblas);
    CHECK_FALSE(kernels::gemm_supported_by_libxsmm(d.m, d.n, d.k, false, false, 0.5));
    std::vector<float> c = c0;
    CHECK_FALSE(kernels::gemm_raw_on<float>(GemmBackend::libxsmm, a.data(), b.data(), c.data(), d.m, d.n, d.k, false,
                                            false, 0.5f));
    CHECK(c == c0);  // declined: nothing written
    kernels::gemm_raw<float>(a.data(), b.data(), c.data(), d.m, d.n, d.k, false, false, 0.5f);
    CHECK(relative_error(a, b, c0, c, d, false, false, 0.5f) <= 1e-5);
  }
}

TEST_CASE("gemm backends: names, parsing and refusals") {
  for (GemmBackend backend : {GemmBackend::automatic, GemmBackend::openblas, GemmBackend::libxsmm})
    CHECK(parse_gemm_backend(gemm_backend_name(backend)) == backend);
  CHECK_THROWS_WITH_AS(parse_gemm_backend("mkl"), "GEMM backend must be one of auto, openblas, libxsmm; got 'mkl'",
                       std::invalid_argument);
  CHECK_THROWS_AS(parse_gemm_backend(""), std::invalid_argument);
  if (!libxsmm_available()) {
    const GemmBackend before = gemm_backend();
    CHECK_THROWS_WITH_AS(set_gemm_backend(GemmBackend::libxsmm),
                         "set_gemm_backend(libxsmm): this tapegrad was built without libxsmm", std::invalid_argument);
    CHECK(gemm_backend() == before);
    CHECK_FALSE(kernels::gemm_supported_by_libxsmm(4, 4, 4, false, false, 0.0));
  }
}

TEST_CASE("gemm backends: the linalg gradchecks pass with each backend forced") {
  std::vector<GemmBackend> settings = {GemmBackend::openblas};
  if (libxsmm_available())
    settings.push_back(GemmBackend::libxsmm);
  else
    MESSAGE("libxsmm path skipped: this tapegrad was built without libxsmm");
#ifdef TAPEGRAD_TESTS_HAVE_NN
  nn::register_ops();  // linear and conv2d run their products through gemm_raw too
#endif
  for (GemmBackend setting : settings) {
    GemmBackendGuard guard(setting);
    int checked = 0;
    for (const OpInfo& op : op_registry()) {
      if (op.family != "linalg" && op.name != "nn.linear" && op.name.rfind("nn.conv2d", 0) != 0) continue;
      for (const OpSample& sample : op.samples()) {
        INFO(gemm_backend_name(setting) << ": " << op.name << " / " << sample.description);
        test::check_registered_op(op, sample);
        ++checked;
      }
    }
    CHECK(checked >= 3);
  }
}

TEST_CASE("gemm backends: two threads generating libxsmm kernels for new shapes at once") {
  if (!libxsmm_available()) {
    MESSAGE("libxsmm path skipped: this tapegrad was built without libxsmm");
    return;
  }
  // Shapes no other test uses, so each thread's first product JIT-generates its kernel while the
  // other thread does the same for its own (and for shared) shapes.
  auto run = [](int thread, double* worst) {
    for (int64_t s = 0; s < 24; ++s) {
      const Dims d{37 + s, 41 + (s % 5) * thread, 19 + s % 7};
      const bool ta = (s + thread) % 2 == 1;
      const auto a = pattern<float>(d.m * d.k, thread), b = pattern<float>(d.k * d.n, s),
                 c0 = pattern<float>(d.m * d.n, 7);
      std::vector<float> c = c0;
      if (!kernels::gemm_raw_on<float>(GemmBackend::libxsmm, a.data(), b.data(), c.data(), d.m, d.n, d.k, ta, false,
                                       1.f))
        *worst = INFINITY;
      *worst = std::max(*worst, relative_error(a, b, c0, c, d, ta, false, 1.f));
    }
  };
  double worst0 = 0, worst1 = 0;
  std::thread t0(run, 1, &worst0), t1(run, 2, &worst1);
  t0.join();
  t1.join();
  CHECK(worst0 <= 1e-5);
  CHECK(worst1 <= 1e-5);
}
