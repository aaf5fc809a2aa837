// The run-time ISA paths of simd.hpp's kernels: every path this build has and this CPU runs is
// checked against a float64 reference and against the baseline path, on rows with partial final
// vectors (n = 1, 7, 15, 16, 17, 33, 1000) and special values (−∞, large, NaN). A path the build
// lacks or the CPU cannot run is reported as skipped (a doctest MESSAGE), never replaced by another.
// Also: IsaScope and TAPEGRAD_ISA really route the kernels (simd::last_path), and the message a
// CPU below the build's baseline gets (cpu.hpp's baseline_problem, with faked CPU answers).
//
// Tolerances. Between paths: element-wise results within 1e-6 relative in float32 (1e-13 in
// float64) — xsimd's exp/erf are the same algorithm at either width, and may differ by an ulp or two
// (more with or without FMA); exp rows relative to the value, gelu relative to |y| + |x| (its rounding
// scales with x); row_max and the softmax shift m exactly. Row sums add in another order (8 vs 16 float
// lanes), so they are held to the rounding bound of a lane-split sum, (n/4 + 16)·ε·Σ|terms|.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "autograd/cpu.hpp"
#include "autograd/simd.hpp"

using namespace tapegrad;

namespace {

const int64_t kSizes[] = {1, 7, 15, 16, 17, 33, 1000};

/// Whether the kernels can be run on `isa` here: the build has that path and this CPU runs it.
/// Isa::avx2 is no separate path when the baseline has AVX2 (the portable path is that code).
bool runnable(Isa isa) { return simd::path_built(isa) && isa_supported(isa); }

/// Says, once per test case, which wider paths this test case skips and why.
void report_skipped_paths() {
  for (Isa isa : {Isa::avx2, Isa::avx512}) {
    const std::string name = isa_name(isa);
    if (!simd::path_built(isa)) {
      if (isa == Isa::avx512)
        MESSAGE("skipped: the avx512 path, which this build does not have (TAPEGRAD_ARCH_FLAGS = "
                << std::string(baseline_flags()) << ")");
    } else if (!isa_supported(isa)) {
      MESSAGE("skipped: the " << name << " path, which this CPU (" << std::string(isa_name(cpu_isa()))
                              << ") cannot run");
    }
  }
}

/// Runs body(isa) under IsaScope(isa) for the baseline path and every wider path this build has
/// and this CPU runs (report_skipped_paths says which are not), the baseline first.
void for_each_path(const std::function<void(Isa)>& body) {
  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512}) {
    if (!runnable(isa)) continue;
    IsaScope scope(isa);
    const std::string name = isa_name(isa);
    CAPTURE(name);
    body(isa);
  }
}

template <class T>
std::vector<T> random_row(int64_t n, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<T> x(static_cast<size_t>(n));
  for (T& v : x) v = static_cast<T>(u(rng));
  return x;
}

/// Rows of n values: uniform in [−8, 8], with −∞ entries, a large one, all −∞.
template <class T>
std::vector<std::vector<T>> test_rows(int64_t n) {
  const T inf = std::numeric_limits<T>::infinity();
  std::vector<std::vector<T>> rows;
  rows.push_back(random_row<T>(n, static_cast<uint64_t>(n), -8, 8));
  auto with_ninf = rows[0];
  for (size_t k = 0; k < with_ninf.size(); k += 3) with_ninf[k] = -inf;
  rows.push_back(with_ninf);
  auto large = rows[0];
  large[large.size() / 2] = T(1e30);
  rows.push_back(large);
  rows.push_back(std::vector<T>(static_cast<size_t>(n), -inf));
  return rows;
}

template <class T>
double eps() {
  return std::numeric_limits<T>::epsilon();
}
/// Element-wise agreement between paths: 1e-6 relative in float32, 1e-13 in float64.
template <class T>
double elementwise_tol() {
  return sizeof(T) == 4 ? 1e-6 : 1e-13;
}
/// The rounding bound of a sum of n terms split over vector lanes, relative to Σ|terms|.
template <class T>
double sum_tol(int64_t n) {
  return (static_cast<double>(n) / 4 + 16) * eps<T>();
}

/// a and b agree within tol·scale (+ the smallest normal), or are both NaN.
bool agree(double a, double b, double tol, double scale) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (a == b) return true;  // infinities
  return std::abs(a - b) <= tol * scale + std::numeric_limits<float>::min();
}

template <class T>
void check_row_max() {
  for (int64_t n : kSizes)
    for (const auto& row : test_rows<T>(n)) {
      CAPTURE(n);
      double ref = -std::numeric_limits<double>::infinity();
      for (T v : row) ref = std::max(ref, static_cast<double>(v));
      T base = 0;
      for_each_path([&](Isa isa) {
        const T m = simd::row_max(row.data(), n);
        CHECK(simd::last_path() == isa);
        CHECK(static_cast<double>(m) == ref);
        if (isa == Isa::portable) base = m;
        CHECK(m == base);  // max is exact: bitwise equal across paths
      });
    }
}

template <class T>
void check_exp_shifted_row() {
  for (int64_t n : kSizes)
    for (const auto& row : test_rows<T>(n)) {
      CAPTURE(n);
      T base_m = 0, base_total = 0;
      std::vector<T> base_out;
      for_each_path([&](Isa isa) {
        std::vector<T> out(row.size());
        T m = 0;
        const T total = simd::exp_shifted_row(row.data(), out.data(), n, m);
        CHECK(simd::last_path() == isa);
        double ref_m = -std::numeric_limits<double>::infinity(), ref_total = 0;
        for (T v : row) ref_m = std::max(ref_m, static_cast<double>(v));
        if (!std::isfinite(ref_m)) ref_m = 0;
        CHECK(static_cast<double>(m) == ref_m);
        for (size_t k = 0; k < row.size(); ++k) {
          const double ref = std::exp(static_cast<double>(static_cast<T>(row[k] - m)));  // the kernel's own shift
          ref_total += ref;
          CHECK(agree(out[k], ref, 4 * eps<T>(), ref));
        }
        CHECK(agree(total, ref_total, sum_tol<T>(n), ref_total));
        T m_only = 0;  // out = null: the same sum, nothing written
        CHECK(simd::exp_shifted_row<T>(row.data(), nullptr, n, m_only) == total);
        if (isa == Isa::portable) {
          base_m = m, base_total = total, base_out = out;
          return;
        }
        CHECK(m == base_m);
        for (size_t k = 0; k < row.size(); ++k) CHECK(agree(out[k], base_out[k], elementwise_tol<T>(), base_out[k]));
        CHECK(agree(total, base_total, 2 * sum_tol<T>(n), ref_total));
      });
    }
  // A NaN makes the sum NaN on every path (whether or not it wins the max).
  for (int64_t n : kSizes) {
    auto row = random_row<T>(n, 3, -4, 4);
    row[static_cast<size_t>(n - 1)] = std::numeric_limits<T>::quiet_NaN();
    for_each_path([&](Isa) {
      T m = 0;
      CHECK(std::isnan(simd::exp_shifted_row<T>(row.data(), nullptr, n, m)));
    });
  }
}

template <class T>
void check_exp_shift_row() {
  for (int64_t n : kSizes)
    for (const auto& row : test_rows<T>(n)) {
      CAPTURE(n);
      const T shift = T(5);
      std::vector<T> base;
      for_each_path([&](Isa isa) {
        std::vector<T> x = row;
        const T total = simd::exp_shift_row(x.data(), n, shift);
        CHECK(simd::last_path() == isa);
        double ref_total = 0;
        for (size_t k = 0; k < x.size(); ++k) {
          const double ref = std::exp(static_cast<double>(static_cast<T>(row[k] - shift)));
          ref_total += ref;
          CHECK(agree(x[k], ref, 4 * eps<T>(), ref));
        }
        CHECK(agree(total, ref_total, sum_tol<T>(n), ref_total));
        if (isa == Isa::portable) {
          base = x;
          return;
        }
        for (size_t k = 0; k < x.size(); ++k) CHECK(agree(x[k], base[k], elementwise_tol<T>(), base[k]));
      });
    }
}

template <class T>
void check_softmax_backward_row() {
  for (int64_t n : kSizes)
    for (bool log_form : {false, true}) {
      CAPTURE(n);
      CAPTURE(log_form);
      // y: a softmax (or log_softmax) row; g: any gradient.
      std::vector<T> y = random_row<T>(n, 11, -3, 3), g = random_row<T>(n, 12, -1, 1);
      double z = 0;
      for (T v : y) z += std::exp(static_cast<double>(v));
      for (T& v : y) v = static_cast<T>(log_form ? v - std::log(z) : std::exp(static_cast<double>(v)) / z);
      double s = 0, s_abs = 0;
      for (size_t k = 0; k < y.size(); ++k) {
        const double term = log_form ? g[k] : static_cast<double>(g[k]) * y[k];
        s += term;
        s_abs += std::abs(term);
      }
      std::vector<T> base;
      for_each_path([&](Isa isa) {
        std::vector<T> dx(y.size());
        simd::softmax_backward_row(y.data(), g.data(), dx.data(), n, log_form);
        CHECK(simd::last_path() == isa);
        for (size_t k = 0; k < y.size(); ++k) {
          const double yk = y[k], gk = g[k];
          const double ref = log_form ? gk - std::exp(yk) * s : yk * (gk - s);
          const double scale = std::abs(gk) + (log_form ? std::exp(yk) : std::abs(yk)) * (s_abs + std::abs(gk));
          CHECK(agree(dx[k], ref, sum_tol<T>(n), scale));
        }
        if (isa == Isa::portable) {
          base = dx;
          return;
        }
        for (size_t k = 0; k < y.size(); ++k) {
          const double scale =
              std::abs(g[k]) + (log_form ? std::exp(static_cast<double>(y[k])) : std::abs(y[k])) * s_abs;
          CHECK(agree(dx[k], base[k], 2 * sum_tol<T>(n), scale));
        }
      });
    }
}

template <class T>
void check_norm_rows() {
  for (int64_t n : kSizes)
    for (bool centered : {true, false})
      for (double offset : {0.0, 1e4}) {  // |μ| ≫ σ: the centred second pass keeps the squares small
        CAPTURE(n);
        CAPTURE(centered);
        CAPTURE(offset);
        const std::vector<T> x = random_row<T>(n, 21, offset - 1, offset + 1), a = random_row<T>(n, 22, -1, 1);
        double mu = 0;
        if (centered) {
          for (T v : x) mu += v;
          mu /= static_cast<double>(n);
        }
        double sq = 0, sum = 0, dot = 0, abs_sum = 0, abs_dot = 0;
        for (size_t k = 0; k < x.size(); ++k) {
          sq += (x[k] - mu) * (x[k] - mu);
          sum += centered ? a[k] : 0.0;
          abs_sum += std::abs(a[k]);
          dot += a[k] * (x[k] - mu);
          abs_dot += std::abs(a[k]) * (std::abs(static_cast<double>(x[k])) + std::abs(mu));
        }
        std::pair<T, T> base_moments, base_sums;
        for_each_path([&](Isa isa) {
          const auto moments = simd::row_moments(x.data(), n, centered);
          CHECK(simd::last_path() == isa);
          const double mu_scale = std::abs(offset) + 1;
          CHECK(agree(moments.first, mu, sum_tol<T>(n), mu_scale));
          // Σ(x − μ)² around a μ off by δ (≤ the mean's rounding bound) is Σ(x − μ)² + n·δ².
          const double delta = sum_tol<T>(n) * mu_scale, sq_tol = sum_tol<T>(n) * sq + n * delta * delta;
          CHECK(agree(moments.second, sq, 1, sq_tol));
          const auto sums = simd::row_sums(a.data(), x.data(), static_cast<T>(mu), n, centered);
          CHECK(simd::last_path() == isa);
          CHECK(agree(sums.first, sum, sum_tol<T>(n), abs_sum));
          CHECK(agree(sums.second, dot, sum_tol<T>(n) + eps<T>() * mu_scale, abs_dot));
          if (isa == Isa::portable) {
            base_moments = moments, base_sums = sums;
            return;
          }
          CHECK(agree(moments.first, base_moments.first, 2 * sum_tol<T>(n), mu_scale));
          CHECK(agree(moments.second, base_moments.second, 2, sq_tol));
          CHECK(agree(sums.first, base_sums.first, 2 * sum_tol<T>(n), abs_sum));
          CHECK(agree(sums.second, base_sums.second, 2 * sum_tol<T>(n) + eps<T>() * mu_scale, abs_dot));
        });
      }
}

/// gelu(x) and gelu'(x) in float64: exact x·Φ(x), or the tanh form.
double gelu_ref(double x, bool tanh_form) {
  if (!tanh_form) return 0.5 * x * (1 + std::erf(x * M_SQRT1_2));
  return 0.5 * x * (1 + std::tanh(simd::kGeluK * (x + simd::kGeluC * x * x * x)));
}
double gelu_grad_ref(double x, bool tanh_form) {
  if (!tanh_form) return 0.5 * (1 + std::erf(x * M_SQRT1_2)) + x * std::exp(-0.5 * x * x) * simd::kInvSqrt2Pi;
  const double t = std::tanh(simd::kGeluK * (x + simd::kGeluC * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * simd::kGeluK * (1 + 3 * simd::kGeluC * x * x);
}

template <class T>
void check_gelu() {
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  for (int64_t n : kSizes)
    for (bool tanh_form : {false, true}) {
      CAPTURE(n);
      CAPTURE(tanh_form);
      std::vector<T> x = random_row<T>(n, 31, -6, 6), g = random_row<T>(n, 32, -1, 1);
      // Special values where the row is long enough: 0 and tiny (erf instead of y/x), ±large, ±∞, NaN.
      const T specials[] = {T(0), T(1e-4), T(-30), T(40), T(1e31), -inf, inf, nan};
      for (size_t k = 0; k < std::size(specials) && 2 * k + 1 < x.size(); ++k) x[2 * k + 1] = specials[k];
      std::vector<T> base_y, base_dx;
      for_each_path([&](Isa isa) {
        std::vector<T> y(x.size()), dx(x.size());
        simd::gelu(x.data(), y.data(), n, tanh_form);
        CHECK(simd::last_path() == isa);
        simd::gelu_backward(g.data(), x.data(), y.data(), dx.data(), n, tanh_form);
        CHECK(simd::last_path() == isa);
        for (size_t k = 0; k < x.size(); ++k) {
          CAPTURE(x[k]);
          if (!std::isfinite(x[k]) || std::abs(x[k]) > T(1e30)) continue;  // inf·0 forms: compared between paths below
          const double ry = gelu_ref(x[k], tanh_form), rdx = g[k] * gelu_grad_ref(x[k], tanh_form);
          // float: ~16 ulp of |x| (the tanh form's u = k(x + c·x³) rounds before its exp)
          CHECK(agree(y[k], ry, 64 * eps<T>(), std::abs(x[k]) + 1e-30));
          CHECK(agree(dx[k], rdx, 64 * eps<T>(), std::abs(g[k]) * (1 + std::abs(x[k])) + 1e-30));
        }
        if (isa == Isa::portable) {
          base_y = y, base_dx = dx;
          return;
        }
        for (size_t k = 0; k < x.size(); ++k) {
          // Relative to |y| + |x|: gelu's rounding scales with x (x·Φ(x) cancels for x ≪ 0, and
          // FMA or not rounds u = k(x + c·x³) differently), so does its derivative's with g·x.
          CAPTURE(x[k]);
          CHECK(agree(y[k], base_y[k], elementwise_tol<T>(), std::abs(base_y[k]) + std::abs(x[k])));
          CHECK(agree(dx[k], base_dx[k], elementwise_tol<T>(), std::abs(base_dx[k]) + std::abs(g[k]) * (1 + std::abs(x[k]))));
        }
      });
    }
}

/// The first maximum of a 2×2 window in row-major scan order (a NaN counts as the maximum, the
/// first one wins), with its flat position: a plain scalar scan, the reference for max_pool_2x2.
template <class T>
std::pair<T, int64_t> first_max_2x2(const std::vector<T>& plane, int64_t w, int64_t p, int64_t q) {
  const int64_t taps[4] = {2 * p * w + 2 * q, 2 * p * w + 2 * q + 1, (2 * p + 1) * w + 2 * q, (2 * p + 1) * w + 2 * q + 1};
  T best = plane[static_cast<size_t>(taps[0])];
  int64_t at = taps[0];
  for (int t = 1; t < 4; ++t) {
    const T v = plane[static_cast<size_t>(taps[t])];
    if (std::isnan(best)) break;
    if (std::isnan(v) || v > best) best = v, at = taps[t];
  }
  return {best, at};
}

/// Planes of width w (odd and even, around the vector widths) with ties (small integers), −∞, and
/// NaNs; every path must pick exactly the reference's taps: its maxima, another source's values
/// at those taps (each source value its own flat position, so a wrong tap shows), and a gradient
/// written onto them, 0 at every other position (dx starts as NaN, so a position left unwritten
/// shows too), the last odd row and column included.
template <class T>
void check_max_pool_2x2() {
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  for (int64_t w : {2, 3, 7, 8, 16, 17, 33, 64}) {
    const int64_t h = 5, planes = 3;
    CAPTURE(w);
    std::mt19937_64 rng(static_cast<uint64_t>(w));
    std::uniform_int_distribution<int> small(-2, 2), pick(0, 19);
    std::vector<T> x(static_cast<size_t>(planes * h * w)), src(x.size());
    for (T& v : x) {
      const int r = pick(rng);
      v = r == 0 ? nan : r == 1 ? -inf : static_cast<T>(small(rng));
    }
    for (size_t k = 0; k < src.size(); ++k) src[k] = static_cast<T>(k);
    const int64_t oh = h / 2, ow = w / 2, per = oh * ow;
    std::vector<T> g(static_cast<size_t>(planes * per));
    for (size_t k = 0; k < g.size(); ++k) g[k] = static_cast<T>(k + 1);
    for_each_path([&](Isa isa) {
      std::vector<T> out(static_cast<size_t>(planes * per)), at(out.size()), dx(x.size(), nan);
      simd::max_pool_2x2(x.data(), x.data(), planes, h, w, out.data());
      CHECK(simd::last_path() == isa);
      simd::max_pool_2x2(x.data(), src.data(), planes, h, w, at.data());
      simd::max_pool_2x2_backward(x.data(), g.data(), planes, h, w, dx.data());
      CHECK(simd::last_path() == isa);
      std::vector<T> expected_dx(x.size(), T(0));
      for (int64_t c = 0; c < planes; ++c) {
        const std::vector<T> plane(x.begin() + c * h * w, x.begin() + (c + 1) * h * w);
        for (int64_t p = 0; p < oh; ++p)
          for (int64_t q = 0; q < ow; ++q) {
            CAPTURE(c);
            CAPTURE(p);
            CAPTURE(q);
            const auto [best, tap] = first_max_2x2(plane, w, p, q);
            const size_t k = static_cast<size_t>(c * per + p * ow + q);
            CHECK((out[k] == best || (std::isnan(out[k]) && std::isnan(best))));
            CHECK(at[k] == static_cast<T>(c * h * w + tap));
            expected_dx[static_cast<size_t>(c * h * w + tap)] = g[k];
          }
      }
      CHECK(dx == expected_dx);
    });
  }
}

}  // namespace

TEST_CASE("ISA paths: max_pool_2x2 and its backward pick the first maximum's tap on every path (ties, -inf, NaN)") {
  report_skipped_paths();
  check_max_pool_2x2<float>();
  check_max_pool_2x2<double>();
}

TEST_CASE("ISA paths: row_max, every path against float64 and the baseline") {
  report_skipped_paths();
  check_row_max<float>();
  check_row_max<double>();
}

TEST_CASE("ISA paths: exp_shifted_row (softmax, log_softmax, cross-entropy rows)") {
  report_skipped_paths();
  check_exp_shifted_row<float>();
  check_exp_shifted_row<double>();
}

TEST_CASE("ISA paths: exp_shift_row (attention tiles)") {
  report_skipped_paths();
  check_exp_shift_row<float>();
  check_exp_shift_row<double>();
}

TEST_CASE("ISA paths: softmax_backward_row, softmax and log_softmax forms") {
  report_skipped_paths();
  check_softmax_backward_row<float>();
  check_softmax_backward_row<double>();
}

TEST_CASE("ISA paths: row_moments and row_sums (layer and RMS norm)") {
  report_skipped_paths();
  check_norm_rows<float>();
  check_norm_rows<double>();
}

TEST_CASE("ISA paths: gelu and its backward, exact and tanh forms, special values") {
  report_skipped_paths();
  check_gelu<float>();
  check_gelu<double>();
}

TEST_CASE("ISA paths: IsaScope(portable) and TAPEGRAD_ISA route every kernel to the baseline") {
  std::vector<float> x(40, 1.f), y(40), g(40, 1.f);
  float m = 0;
  const std::vector<std::function<void()>> calls = {
      [&] { simd::row_max(x.data(), 40); },
      [&] { simd::exp_shifted_row(x.data(), y.data(), 40, m); },
      [&] { simd::exp_shift_row(y.data(), 40, 1.f); },
      [&] { simd::softmax_backward_row(x.data(), g.data(), y.data(), 40, false); },
      [&] { simd::row_moments(x.data(), 40, true); },
      [&] { simd::row_sums(x.data(), g.data(), 0.f, 40, true); },
      [&] { simd::gelu(x.data(), y.data(), 40, false); },
      [&] { simd::gelu_backward(g.data(), x.data(), y.data(), y.data(), 40, false); },
  };
  {
    IsaScope portable(Isa::portable);
    for (size_t i = 0; i < calls.size(); ++i) {
      CAPTURE(i);
      calls[i]();
      CHECK(simd::last_path() == Isa::portable);
    }
  }
  // Without a scope: the widest path built and run by this CPU, within TAPEGRAD_ISA when it is set
  // (ctest runs this case once more under TAPEGRAD_ISA=portable).
  Isa expected = Isa::portable;
  for (Isa isa : {Isa::avx2, Isa::avx512})
    if (simd::path_built(isa) && isa <= kernel_isa()) expected = isa;
  const char* env = std::getenv("TAPEGRAD_ISA");
  if (env && std::string(env) == "portable") {
    CHECK(kernel_isa() == Isa::portable);
    CHECK(expected == Isa::portable);
  }
  CHECK(kernel_isa() <= cpu_isa());
  for (size_t i = 0; i < calls.size(); ++i) {
    CAPTURE(i);
    calls[i]();
    CHECK(simd::last_path() == expected);
  }
}

TEST_CASE("ISA baseline: a CPU below it gets an error naming what it lacks") {
  const uint32_t avx2_fma = cpu_avx2 | cpu_fma;
  CHECK(baseline_problem(avx2_fma, avx2_fma | cpu_avx512f) == "");
  CHECK(baseline_problem(0, 0) == "");
  const std::string both = baseline_problem(cpu_avx | avx2_fma, cpu_sse3 | cpu_avx);
  CHECK(both.find("tapegrad was built for x86-64 with AVX, AVX2 and FMA (TAPEGRAD_ARCH_FLAGS = " +
                  std::string(baseline_flags()) + "); this CPU lacks AVX2 and FMA.") == 0);
  CHECK(baseline_problem(avx2_fma, cpu_avx2).find("this CPU lacks FMA.") != std::string::npos);
  // This CPU runs this build (or the start-up check would have stopped the test binary).
  CHECK(baseline_problem(baseline_features(), cpu_features()) == "");
  // The test is compiled with the library's arch flags: the library's baseline is what this file sees.
#if defined(__AVX2__) && defined(__FMA__)
  CHECK((baseline_features() & avx2_fma) == avx2_fma);
#else
  CHECK((baseline_features() & cpu_avx2) == 0);
#endif
#ifdef __AVX512F__
  CHECK((baseline_features() & cpu_avx512f) != 0);
#else
  CHECK((baseline_features() & cpu_avx512f) == 0);
#endif
  const uint32_t f_dq = cpu_avx512f | cpu_avx512dq;
  CHECK(((cpu_features() & f_dq) == f_dq) == isa_supported(Isa::avx512));
}
