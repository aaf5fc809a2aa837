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
  check_values(where(tensor({1, 0, 1}), tensor({1, 2, 3}), scalar(-1)), {1, -1, 3});
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

TEST_CASE("dtype mismatches and int64 misuse are clear errors") {
  CHECK_THROWS_WITH_AS(ones({2}) + ones({2}, DType::f64), doctest::Contains("tapegrad::add"), DTypeError);
  CHECK_THROWS_WITH_AS(exp(index_tensor({1})), doctest::Contains("tapegrad::exp"), DTypeError);
  CHECK_THROWS_WITH_AS(ones({2, 3}) * ones({3, 2}), doctest::Contains("[2, 3] and [3, 2]"), ShapeError);
  CHECK_THROWS_AS(clamp(ones({2}), 1, 0), std::invalid_argument);
  CHECK_THROWS_AS(ones({2}) / 0.0, std::invalid_argument);
}

TEST_CASE("BLAS runs single-threaded on an optimised kernel family") {
  CHECK(num_threads() >= 1);
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
