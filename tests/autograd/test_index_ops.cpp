// tril / triu, masked_fill, arange, cumsum, sort, topk and multinomial: known values (PyTorch's
// semantics), gradients, ties, and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "autograd/autograd.hpp"
#include "autograd/error_message.hpp"

using namespace tapegrad;
using testing::contains;
using testing::message_of;

namespace {
void check_values(const Tensor& t, const std::vector<double>& expect) {
  auto got = t.to_vector();
  REQUIRE(got.size() == expect.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(expect[i])) CHECK(std::isnan(got[i]));
    else if (std::isinf(expect[i])) CHECK(got[i] == expect[i]);
    else CHECK(got[i] == doctest::Approx(expect[i]).epsilon(1e-6));
  }
}
Tensor grad_of(const Tensor& x) {
  REQUIRE(x.grad().defined());
  return x.grad();
}
}  // namespace

TEST_CASE("tril and triu with diagonal offsets, on any dtype") {
  Tensor x = arange(1, 13).reshape({3, 4});
  check_values(tril(x), {1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 11, 0});
  check_values(tril(x, 1), {1, 2, 0, 0, 5, 6, 7, 0, 9, 10, 11, 12});
  check_values(tril(x, -1), {0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0});
  check_values(triu(x), {1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 11, 12});
  check_values(triu(x, 1), {0, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 12});
  check_values(triu(x, -1), {1, 2, 3, 4, 5, 6, 7, 8, 0, 10, 11, 12});
  // batched over leading dimensions; int64 and bool (the causal mask of attention)
  Tensor b = tril(arange(0, 8, 1, DType::i64).reshape({2, 2, 2}));
  CHECK(b.dtype() == DType::i64);
  check_values(b, {0, 0, 2, 3, 4, 0, 6, 7});
  Tensor causal = triu(ones({3, 3}, DType::b8), 1);
  CHECK(causal.dtype() == DType::b8);
  check_values(causal, {0, 1, 1, 0, 0, 1, 0, 0, 0});
  // gradient: tril of the incoming gradient
  Tensor w = randn({3, 3}).requires_grad_();
  sum(mul(tril(w), arange(1, 10).reshape({3, 3}))).backward();
  check_values(grad_of(w), {1, 0, 0, 4, 5, 0, 7, 8, 9});
  CHECK(contains(message_of<ShapeError>([] { tril(ones({3})); }), "tapegrad::tril: needs at least 2 dimensions, got shape [3]"));
}

TEST_CASE("masked_fill: bool mask broadcast to x, zero gradient where filled") {
  Tensor scores = arange(0, 6).reshape({2, 3});
  Tensor mask = tensor({0, 1, 1}, DType::b8);
  check_values(masked_fill(scores, mask, -1e9), {0, -1e9, -1e9, 3, -1e9, -1e9});
  Tensor s = masked_fill(scores, triu(ones({2, 3}, DType::b8), 1), -INFINITY);
  check_values(s, {0, -INFINITY, -INFINITY, 3, 4, -INFINITY});
  check_values(softmax(s, -1), {1, 0, 0, 1 / (1 + std::exp(1.0)), 1 / (1 + std::exp(-1.0)), 0});
  // keeps x's dtype
  Tensor i = masked_fill(index_tensor({1, 2, 3}), tensor({1, 0, 1}, DType::b8), 7);
  CHECK(i.dtype() == DType::i64);
  check_values(i, {7, 2, 7});
  check_values(masked_fill(tensor({0, 0}, DType::b8), tensor({1, 0}, DType::b8), true), {1, 0});
  // gradient
  Tensor x = randn({2, 3}).requires_grad_();
  sum(mul(masked_fill(x, mask, 5.0), arange(1, 7).reshape({2, 3}))).backward();
  check_values(grad_of(x), {1, 0, 0, 4, 0, 0});
  // errors
  CHECK(contains(message_of<DTypeError>([&] { masked_fill(scores, tensor({0, 1, 1}), 0.0); }),
                 "tapegrad::masked_fill: the mask must be bool, got float32 [3]"));
  CHECK(contains(message_of<ShapeError>([&] { masked_fill(scores, ones({2}, DType::b8), 0.0); }), "masked_fill"));
  CHECK(contains(message_of<ShapeError>([&] { masked_fill(ones({3}), ones({2, 3}, DType::b8), 0.0); }),
                 "tapegrad::masked_fill: the mask of shape [2, 3] does not broadcast to the input's shape [3]"));
}

TEST_CASE("arange in every dtype but bool") {
  Tensor i = arange(0, 5, 1, DType::i64);
  CHECK(i.dtype() == DType::i64);
  CHECK(i.shape() == Shape{5});
  check_values(i, {0, 1, 2, 3, 4});
  check_values(arange(5, 0, -2, DType::i64), {5, 3, 1});
  check_values(arange(0, 1, 0.25, DType::f64), {0, 0.25, 0.5, 0.75});
  CHECK(arange(0, 3).dtype() == DType::f32);
  CHECK(contains(message_of<DTypeError>([] { arange(0, 3, 1, DType::b8); }), "tapegrad::arange: not supported for bool"));
}

TEST_CASE("cumsum: values, int64 and bool, and the reversed running sum as gradient") {
  check_values(cumsum(tensor({1, 2, 3, 4}), 0), {1, 3, 6, 10});
  Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  check_values(cumsum(x, 0), {1, 2, 3, 5, 7, 9});
  check_values(cumsum(x, -1), {1, 3, 6, 4, 9, 15});
  Tensor i = cumsum(index_tensor({5, -2, 7}), 0);
  CHECK(i.dtype() == DType::i64);
  check_values(i, {5, 3, 10});
  Tensor b = cumsum(tensor({1, 0, 1, 1}, DType::b8), 0);
  CHECK(b.dtype() == DType::i64);
  check_values(b, {1, 1, 2, 3});
  Tensor w = randn({4}).requires_grad_();
  sum(mul(cumsum(w, 0), tensor({1, 2, 3, 4}))).backward();
  check_values(grad_of(w), {10, 9, 7, 4});
  CHECK(contains(message_of<ShapeError>([&] { cumsum(x, 2); }), "tapegrad::cumsum: axis 2"));
}

TEST_CASE("sort: stable on ties, NaN greatest, values and indices") {
  const double nan = std::nan("");
  Tensor x = tensor({3, 1, 2, 1, nan, 0});
  auto [v, i] = sort(x);
  check_values(v, {0, 1, 1, 2, 3, nan});
  check_values(i, {5, 1, 3, 2, 0, 4});  // the two 1s keep their order
  CHECK(i.dtype() == DType::i64);
  auto d = sort(x, 0, true);
  check_values(d.values, {nan, 3, 2, 1, 1, 0});
  check_values(d.indices, {4, 0, 2, 1, 3, 5});  // stable descending too
  // along dim 0 of a 2-D tensor
  auto c = sort(tensor({3, 1, 1, 2, 2, 0}, {3, 2}), 0);
  check_values(c.values, {1, 0, 2, 1, 3, 2});
  check_values(c.indices, {1, 2, 2, 0, 0, 1});
  // ties everywhere: the identity permutation
  check_values(sort(zeros({5}), 0, true).indices, {0, 1, 2, 3, 4});
  // int64 and bool
  auto s = sort(index_tensor({4, -2, 9, 4}));
  CHECK(s.values.dtype() == DType::i64);
  check_values(s.values, {-2, 4, 4, 9});
  check_values(s.indices, {1, 0, 3, 2});
  check_values(sort(tensor({1, 0, 1, 0}, DType::b8)).indices, {1, 3, 0, 2});
  // gradient: scattered back onto the indices
  Tensor w = tensor({0.3, -1, 2}).requires_grad_();
  sum(mul(sort(w).values, tensor({1, 10, 100}))).backward();
  check_values(grad_of(w), {10, 1, 100});
}

TEST_CASE("topk: largest or smallest, lower index first on ties, gradient onto the indices") {
  Tensor x = tensor({1, 3, 3, 2, 5});
  auto [v, i] = topk(x, 2);
  check_values(v, {5, 3});
  check_values(i, {4, 1});
  auto t3 = topk(x, 3);
  check_values(t3.values, {5, 3, 3});
  check_values(t3.indices, {4, 1, 2});
  auto low = topk(x, 2, -1, false);
  check_values(low.values, {1, 2});
  check_values(low.indices, {0, 3});
  check_values(topk(tensor({1, std::nan(""), 2}), 1).indices, {1});  // NaN is the greatest
  auto rows = topk(tensor({1, 9, 4, 7, 2, 8}, {2, 3}), 2, 1);
  CHECK(rows.values.shape() == Shape{2, 2});
  check_values(rows.values, {9, 4, 8, 7});
  check_values(rows.indices, {1, 2, 2, 0});
  auto cols = topk(tensor({1, 9, 4, 7, 2, 8}, {3, 2}), 1, 0);
  check_values(cols.values, {4, 9});
  check_values(cols.indices, {1, 0});
  check_values(topk(index_tensor({3, 8, 1}), 1).values, {8});
  CHECK(topk(x, 0).values.numel() == 0);
  Tensor w = tensor({0.5, 4, -1, 2}).requires_grad_();
  sum(mul(topk(w, 2).values, tensor({3, 7}))).backward();
  check_values(grad_of(w), {0, 3, 0, 7});
  CHECK(contains(message_of<ShapeError>([&] { topk(x, 6); }), "tapegrad::topk: k = 6 is outside [0, 5]"));
  CHECK(contains(message_of<ShapeError>([&] { topk(x, -1); }), "tapegrad::topk: k = -1"));
}

TEST_CASE("multinomial from a seeded Generator: frequencies, zero weights, rows, replacement") {
  Tensor w = tensor({1, 0, 6, 3}, DType::f64);  // weights need not sum to 1
  Generator gen(1234);
  const int64_t n = 20000;
  Tensor draws = multinomial(w, n, true, gen);
  CHECK(draws.dtype() == DType::i64);
  CHECK(draws.shape() == Shape{n});
  std::vector<double> counts(4, 0);
  for (double c : draws.to_vector()) counts[static_cast<size_t>(c)] += 1;
  CHECK(counts[1] == 0);  // a zero weight is never drawn
  CHECK(counts[0] / n == doctest::Approx(0.1).epsilon(0.15));  // ±0.015 (> 4 standard errors)
  CHECK(counts[2] / n == doctest::Approx(0.6).epsilon(0.025));
  CHECK(counts[3] / n == doctest::Approx(0.3).epsilon(0.05));
  // the same seed gives the same draws
  Generator again(1234);
  CHECK(multinomial(w, n, true, again).to_vector() == draws.to_vector());
  // 2-D: one row of draws per row of weights
  Generator g2(7);
  Tensor rows = multinomial(tensor({0, 0, 1, 5, 0, 0}, {2, 3}, DType::f32), 50, true, g2);
  CHECK(rows.shape() == Shape{2, 50});
  auto r = rows.to_vector();
  for (int k = 0; k < 50; ++k) CHECK(r[static_cast<size_t>(k)] == 2);
  for (int k = 50; k < 100; ++k) CHECK(r[static_cast<size_t>(k)] == 0);
  // without replacement: distinct categories, all positive ones when asked for as many
  Generator g3(99);
  for (int trial = 0; trial < 20; ++trial) {
    auto p = multinomial(tensor({2, 0, 1, 1}), 3, false, g3).to_vector();
    CHECK(std::set<double>(p.begin(), p.end()) == std::set<double>{0, 2, 3});
  }
  // without replacement, the first draw follows the weights
  Generator g4(5);
  double first_zero = 0;
  for (int trial = 0; trial < 4000; ++trial) first_zero += multinomial(tensor({3, 1}), 2, false, g4).to_vector()[0] == 0;
  CHECK(first_zero / 4000 == doctest::Approx(0.75).epsilon(0.04));
}

TEST_CASE("multinomial errors") {
  Generator g(1);
  auto invalid = [&](const Tensor& p, int64_t k, bool repl) {
    return message_of<std::invalid_argument>([&] { multinomial(p, k, repl, g); });
  };
  CHECK(contains(invalid(tensor({1, -0.5}), 1, true), "tapegrad::multinomial: weight -0.5"));
  CHECK(contains(invalid(tensor({1, INFINITY}), 1, true), "finite and non-negative"));
  CHECK(contains(invalid(tensor({std::nan(""), 1}), 1, true), "finite and non-negative"));
  CHECK(contains(invalid(tensor({1, 1, 0, 0}, {2, 2}), 1, true), "row 1 of weights has no positive weight"));
  CHECK(contains(invalid(tensor({1, 1, 1}), 4, false), "cannot draw 4 samples from 3 categories without replacement"));
  CHECK(contains(invalid(tensor({1, 0, 1}), 3, false), "which has only 2 positive weights"));
  CHECK(contains(invalid(tensor({1, 1}), 0, true), "num_samples must be positive"));
  CHECK(contains(message_of<DTypeError>([&] { multinomial(index_tensor({1, 2}), 1, true, g); }), "weights must be floating, got int64"));
  CHECK(contains(message_of<ShapeError>([&] { multinomial(ones({2, 2, 2}), 1, true, g); }), "must be 1-D or 2-D"));
  CHECK(multinomial(tensor({0, 1}), 5, true, g).to_vector() == std::vector<double>(5, 1));  // more draws than categories with replacement
}
