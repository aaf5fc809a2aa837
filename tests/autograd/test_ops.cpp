// Forward values against known numbers, and each op family's error messages.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.hpp"
#include "autograd/blas.hpp"

using namespace tapegrad;

namespace {
void check_values(const Tensor& t, const std::vector<double>& expect, double eps = 1e-6) {
  auto got = t.to_vector();
  REQUIRE(got.size() == expect.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(expect[i]).epsilon(eps));
}
}  // namespace

TEST_CASE("elementwise forward values with broadcasting") {
  Tensor a = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = tensor({10, 20, 30});
  check_values(a + b, {11, 22, 33, 14, 25, 36});
  check_values(a - tensor({1, 2}, {2, 1}), {0, 1, 2, 2, 3, 4});
  check_values(a * scalar(2), {2, 4, 6, 8, 10, 12});
  check_values(b / a, {10, 10, 10, 2.5, 4, 5});
  check_values(pow(a, 2.0), {1, 4, 9, 16, 25, 36});
  check_values(pow(tensor({2, 3}), tensor({3, 2})), {8, 9});
  check_values(maximum(a, scalar(3.5)), {3.5, 3.5, 3.5, 4, 5, 6});
  check_values(minimum(a, scalar(3.5)), {1, 2, 3, 3.5, 3.5, 3.5});
  check_values(1.0 - a, {0, -1, -2, -3, -4, -5});
  check_values(6.0 / a, {6, 3, 2, 1.5, 1.2, 1});
  CHECK((a + b).shape() == Shape{2, 3});
  CHECK((tensor({1, 2}, {2, 1, 1}) * ones({3, 4})).shape() == Shape{2, 3, 4});
}

TEST_CASE("unary forward values") {
  Tensor x = tensor({-2, -0.5, 0, 0.5, 2});
  check_values(relu(x), {0, 0, 0, 0.5, 2});
  check_values(leaky_relu(x, 0.1), {-0.2, -0.05, 0, 0.5, 2});
  check_values(abs(x), {2, 0.5, 0, 0.5, 2});
  check_values(clamp(x, -1, 1), {-1, -0.5, 0, 0.5, 1});
  check_values(sign(x), {-1, -1, 0, 1, 1});
  check_values(exp(x), {std::exp(-2.0), std::exp(-0.5), 1, std::exp(0.5), std::exp(2.0)});
  check_values(tanh(x), {std::tanh(-2.0), std::tanh(-0.5), 0, std::tanh(0.5), std::tanh(2.0)});
  check_values(sigmoid(x), {1 / (1 + std::exp(2.0)), 1 / (1 + std::exp(0.5)), 0.5, 1 / (1 + std::exp(-0.5)),
                            1 / (1 + std::exp(-2.0))});
  check_values(sin(x), {std::sin(-2.0), std::sin(-0.5), 0, std::sin(0.5), std::sin(2.0)});
  check_values(cos(x), {std::cos(-2.0), std::cos(-0.5), 1, std::cos(0.5), std::cos(2.0)});
  check_values(erf(x), {std::erf(-2.0), std::erf(-0.5), 0, std::erf(0.5), std::erf(2.0)});
  // PyTorch: gelu([-2, -0.5, 0, 0.5, 2]) = [-0.0455, -0.1543, 0, 0.3457, 1.9545]
  check_values(gelu(x), {-0.04550026, -0.15426877, 0, 0.34573123, 1.95449974}, 1e-5);
  // softplus(x) = log(1 + e^x); linear above the threshold
  check_values(softplus(x), {std::log1p(std::exp(-2.0)), std::log1p(std::exp(-0.5)), std::log(2.0),
                             std::log1p(std::exp(0.5)), std::log1p(std::exp(2.0))});
  check_values(softplus(tensor({30.0})), {30.0});
  check_values(sqrt(tensor({4, 9})), {2, 3});
  check_values(log(tensor({1, std::exp(1.0)})), {0, 1});
  check_values(where(tensor({1, 0, 1}, DType::b8), tensor({1, 2, 3}), scalar(-1)), {1, -1, 3});
  check_values(gt(x, 0.0), {0, 0, 0, 1, 1});
}

TEST_CASE("reductions") {
  Tensor x = tensor({1, 5, 3, 4, 2, 6}, {2, 3});
  CHECK(sum(x).item() == 21);
  check_values(sum(x, {0}), {5, 7, 9});
  check_values(sum(x, {1}, true), {9, 12});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1});
  check_values(mean(x, {-1}), {3, 4});
  check_values(max(x, {1}), {5, 6});
  check_values(min(x, {0}), {1, 2, 3});
  CHECK(max(x).item() == 6);
  check_values(var(x, {1}), {4, 4});
  check_values(var(x, {1}, 0), {8.0 / 3, 8.0 / 3});
  check_values(logsumexp(x, {1}), {std::log(std::exp(1.0) + std::exp(5.0) + std::exp(3.0)),
                                   std::log(std::exp(4.0) + std::exp(2.0) + std::exp(6.0))});
  CHECK(argmax(x, 1).to_vector() == std::vector<double>{1, 2});
  CHECK(argmax(x, 0).to_vector() == std::vector<double>{1, 0, 1});
  CHECK(argmax(x, 1).dtype() == DType::i64);
  Tensor big = tensor({1e4, 1e4 + 1}, DType::f32);
  CHECK(std::isfinite(logsumexp(big).item()));
  CHECK(sum_to(ones({2, 3, 4}), {3, 1}).to_vector() == std::vector<double>{8, 8, 8});
  CHECK_THROWS_WITH_AS(sum(x, {2}), doctest::Contains("tapegrad::sum"), ShapeError);
  CHECK_THROWS_AS(sum_to(ones({2, 3}), {4}), ShapeError);
  CHECK_THROWS_AS(max(zeros({0, 3}), {0}), ShapeError);
}

TEST_CASE("matmul shapes and values (BLAS gemm)") {
  Tensor a = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = tensor({1, 0, 0, 1, 1, 1}, {3, 2});
  check_values(matmul(a, b), {4, 5, 10, 11});
  check_values(gemm(a, a, false, true), {14, 32, 32, 77});
  check_values(gemm(a, a, true, false), {17, 22, 27, 22, 29, 36, 27, 36, 45});
  CHECK(matmul(tensor({1, 2, 3}), tensor({4, 5, 6})).item() == 32);
  CHECK(matmul(tensor({1, 2, 3}), tensor({4, 5, 6})).shape() == Shape{});
  check_values(matmul(a, tensor({1, 1, 1})), {6, 15});
  Tensor batched = matmul(ones({4, 1, 2, 3}), ones({5, 3, 2}));
  CHECK(batched.shape() == Shape{4, 5, 2, 2});
  CHECK(batched.at({3, 4, 1, 1}) == 3);
  CHECK(matmul(ones({7, 2, 3}), ones({3, 4})).shape() == Shape{7, 2, 4});
  CHECK(matmul(ones({2, 3}, DType::f64), ones({3, 2}, DType::f64)).dtype() == DType::f64);
  CHECK_THROWS_WITH_AS(matmul(ones({2, 3}), ones({4, 2})), doctest::Contains("[2, 3]"), ShapeError);
  CHECK_THROWS_WITH_AS(matmul(ones({2, 3}), ones({3, 2}, DType::f64)), doctest::Contains("float64"), DTypeError);
  CHECK_THROWS_AS(matmul(ones({2, 2, 3}), ones({3, 3, 2})), ShapeError);
  // a vector operand is named as given, not as the matrix it is promoted to
  CHECK_THROWS_WITH_AS(matmul(ones({3}), ones({4, 5})), doctest::Contains("[3] · [4, 5]"), ShapeError);
  CHECK_THROWS_WITH_AS(matmul(ones({4, 5}), ones({3})), doctest::Contains("[4, 5] · [3]"), ShapeError);
  // an empty inner dimension gives zeros (a sum of nothing), batched too, and backward runs
  Tensor e = ones({2, 3, 0}).requires_grad_(), f = ones({0, 4}).requires_grad_();
  Tensor z = matmul(e, f);
  CHECK(z.shape() == Shape{2, 3, 4});
  for (double v : z.to_vector()) CHECK(v == 0);
  sum(z).backward();
  CHECK(e.grad().shape() == Shape{2, 3, 0});
  CHECK(f.grad().shape() == Shape{0, 4});
}

TEST_CASE("shape ops") {
  Tensor x = arange(0, 6).reshape({2, 3});
  CHECK(x.shape() == Shape{2, 3});
  CHECK(reshape(x, {-1}).shape() == Shape{6});
  check_values(transpose(x, 0, 1), {0, 3, 1, 4, 2, 5});
  // permute [2,3,4] → [4,2,3]: element [0, i, j] is x[i][j][0]
  check_values(slice(permute(arange(0, 24).reshape({2, 3, 4}), {2, 0, 1}), 0, 0, 1).reshape({-1}),
               {0, 4, 8, 12, 16, 20});
  CHECK(squeeze(ones({2, 1, 3}), 1).shape() == Shape{2, 3});
  CHECK(unsqueeze(ones({2, 3}), 0).shape() == Shape{1, 2, 3});
  CHECK(flatten(ones({2, 3, 4}), 1).shape() == Shape{2, 12});
  check_values(expand(tensor({1, 2}, {2, 1}), {2, 3}), {1, 1, 1, 2, 2, 2});
  check_values(slice(x, 1, 1, 3), {1, 2, 4, 5});
  check_values(slice(arange(0, 10), 0, -4, 10, 2), {6, 8});
  check_values(cat({x, arange(6, 9).reshape({1, 3})}, 0), {0, 1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(stack({x, x}, 1).shape() == Shape{2, 2, 3});
  check_values(index_select(x, 1, index_tensor({2, 0})), {2, 0, 5, 3});
  check_values(gather(x, 1, index_tensor({2, 1, 0, 0}, {2, 2})), {2, 1, 3, 3});
  check_values(one_hot(index_tensor({2, 0}), 3), {0, 0, 1, 1, 0, 0});
  // a row slice is a view: no copy
  Tensor rows = slice(x, 0, 1, 2);
  CHECK(rows.impl()->storage.data() == x.impl()->storage.data());
  CHECK_THROWS_WITH_AS(reshape(x, {4, 2}), doctest::Contains("[2, 3]"), ShapeError);
  CHECK_THROWS_AS(squeeze(x, 0), ShapeError);
  CHECK_THROWS_AS(expand(ones({3}), {2, 4}), ShapeError);
  CHECK_THROWS_WITH_AS(index_select(x, 0, index_tensor({5})), doctest::Contains("index 5"), ShapeError);
  CHECK_THROWS_AS(index_select(x, 0, tensor({1})), DTypeError);
  CHECK_THROWS_AS(gather(x, 1, index_tensor({3, 0}, {2, 1})), ShapeError);
  CHECK_THROWS_AS(one_hot(index_tensor({3}), 3), ShapeError);
  CHECK_THROWS_AS(cat({ones({2, 3}), ones({2, 4})}, 0), ShapeError);
  CHECK_THROWS_AS(permute(x, {0, 0}), ShapeError);
}

TEST_CASE("softmax and log_softmax are stable for huge logits") {
  Tensor logits = tensor({1e4, 0, -1e4, 1e4}, {2, 2}).requires_grad_();
  Tensor p = softmax(logits, 1);
  check_values(p, {1, 0, 0, 1});
  Tensor lp = log_softmax(logits, 1);
  for (double v : lp.to_vector()) CHECK(std::isfinite(v));
  check_values(lp, {0, -1e4, -2e4, 0});
  sum(lp * tensor({1, 0, 0, 1}, {2, 2})).backward();
  for (double g : logits.grad().to_vector()) CHECK(std::isfinite(g));
  Tensor s = softmax(tensor({1, 2, 3}));
  check_values(s, {0.09003057, 0.24472847, 0.66524096});
  CHECK_THROWS_AS(softmax(scalar(1)), ShapeError);
}

TEST_CASE("softmax rows wider than a SIMD vector: values, masked entries, and both backward paths") {
  // Rows of 19 (float32: two 8-lane vectors and a tail of 3) and 9 (float64: two 4-lane vectors and
  // a tail of 1): the vectorised max / exp / sum and the fused first-order backward against a
  // scalar reference in double.
  for (auto [dtype, n] : {std::pair{DType::f32, int64_t{19}}, std::pair{DType::f64, int64_t{9}}}) {
    CAPTURE(n);
    std::vector<double> v;
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t k = 0; k < n; ++k) v.push_back(std::sin(0.7 * static_cast<double>(k + 5 * r)) * (r == 2 ? 40.0 : 3.0));
    v[static_cast<size_t>(n + 4)] = -INFINITY;  // a masked entry (attention-style) in row 1
    Tensor x = tensor(v, {3, n}, dtype).requires_grad_();
    Tensor p = softmax(x, 1), lp = log_softmax(x, 1);
    const double tol = dtype == DType::f32 ? 2e-6 : 1e-14;
    for (int64_t r = 0; r < 3; ++r) {
      double m = -INFINITY, total = 0;
      for (int64_t k = 0; k < n; ++k) m = std::max(m, v[static_cast<size_t>(r * n + k)]);
      for (int64_t k = 0; k < n; ++k) total += std::exp(v[static_cast<size_t>(r * n + k)] - m);
      for (int64_t k = 0; k < n; ++k) {
        const double want = std::exp(v[static_cast<size_t>(r * n + k)] - m) / total;
        CHECK(p.at({r, k}) == doctest::Approx(want).epsilon(tol).scale(1e-30));
        if (std::isfinite(v[static_cast<size_t>(r * n + k)]))
          CHECK(lp.at({r, k}) == doctest::Approx(std::log(want)).epsilon(tol));
      }
    }
    CHECK(p.at({1, 4}) == 0.0);
    CHECK(lp.at({1, 4}) == -INFINITY);
    // fused first-order backward (grad mode off inside backward) == differentiable form (create_graph)
    std::vector<double> gv(v.size()), vs = v;
    for (size_t i = 0; i < gv.size(); ++i) gv[i] = std::cos(1.3 * static_cast<double>(i));
    vs[static_cast<size_t>(n + 4)] = -30.0;  // finite, for the comparison
    Tensor g = tensor(gv, {3, n}, dtype);
    for (bool log_form : {false, true}) {
      CAPTURE(log_form);
      auto f = [&](const Tensor& t) { return log_form ? log_softmax(t, 1) : softmax(t, 1); };
      Tensor xs = tensor(vs, {3, n}, dtype).requires_grad_();
      std::vector<Tensor> fused = grad({f(xs)}, {xs}, {g}, false, false);
      std::vector<Tensor> composite = grad({f(xs)}, {xs}, {g}, false, true);
      std::vector<double> a = fused[0].to_vector(), b = composite[0].to_vector();
      double biggest = 0;
      for (double e : b) biggest = std::max(biggest, std::abs(e));
      const double allowed = (dtype == DType::f32 ? 1e-5 : 1e-13) * biggest;  // rounding, relative to the row scale
      for (size_t i = 0; i < a.size(); ++i) CHECK(std::abs(a[i] - b[i]) <= allowed);
    }
  }
  // and gradcheck over the float64 rows of 9, first order (fused) and second order (differentiable)
  Tensor x9 = tensor({0.3, -1.2, 2.0, 0.5, -0.7, 1.1, 0.0, -2.5, 0.9, 1.4, -0.3, 0.8, -1.9, 2.2, 0.1, -0.6, 0.4, 1.7},
                     {2, 9}, DType::f64).requires_grad_();
  for (bool log_form : {false, true}) {
    auto f = [log_form](const std::vector<Tensor>& in) { return log_form ? log_softmax(in[0], 1) : softmax(in[0], 1); };
    CHECK(gradcheck(f, {x9}).ok);
    CHECK(gradgradcheck(f, {x9}).ok);
  }
}

TEST_CASE("dtype mismatches and int64 misuse are clear errors") {
  CHECK_THROWS_WITH_AS(matmul(ones({2, 2}), ones({2, 2}, DType::f64)), doctest::Contains("tapegrad::matmul"), DTypeError);
  CHECK_THROWS_WITH_AS(pow(index_tensor({2}), index_tensor({3})), doctest::Contains("tapegrad::pow"), DTypeError);
  CHECK_THROWS_WITH_AS(exp(index_tensor({1})), doctest::Contains("tapegrad::exp"), DTypeError);
  CHECK_THROWS_WITH_AS(ones({2, 3}) * ones({3, 2}), doctest::Contains("[2, 3] and [3, 2]"), ShapeError);
  CHECK_THROWS_AS(clamp(ones({2}), 1, 0), std::invalid_argument);
  CHECK_THROWS_AS(ones({2}) / 0.0, std::invalid_argument);
}

TEST_CASE("BLAS runs single-threaded on an optimised kernel family") {
  CHECK(get_num_threads() >= 1);
  CHECK(blas_num_threads() >= 1);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) CHECK(blas_core_name() != "Prescott");
  CHECK_THROWS_AS(set_num_threads(0), std::invalid_argument);
}

TEST_CASE("flush-denormal mode turns denormal arithmetic into zeros and is restored by its guard") {
  volatile float tiny = 1e-39f;  // a float32 denormal
  const bool before = flush_denormal();
  {
    FlushDenormalGuard guard;
    CHECK(flush_denormal());
    volatile float r = tiny * 1.0f;
    CHECK(r == 0.0f);
  }
  CHECK(flush_denormal() == before);
  volatile float r = tiny * 1.0f;
  CHECK(r != 0.0f);
}
