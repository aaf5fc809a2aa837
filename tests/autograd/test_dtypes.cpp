// The dtype system: bool, int64 arithmetic, comparisons, logical ops, where, and type promotion
// (the table in autograd/dtype.hpp, row by row).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "autograd/autograd.hpp"
#include "autograd/error_message.hpp"

using namespace tapegrad;
using testing::contains;
using testing::message_of;

namespace {
const DType kAll[] = {DType::b8, DType::i64, DType::f32, DType::f64};

void check_values(const Tensor& t, const std::vector<double>& expect) {
  auto got = t.to_vector();
  REQUIRE(got.size() == expect.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(expect[i])) CHECK(std::isnan(got[i]));
    else CHECK(got[i] == expect[i]);
  }
}

}  // namespace

TEST_CASE("bool dtype: name, size, creation, conversion, access and printing") {
  CHECK(std::string(dtype_name(DType::b8)) == "bool");
  CHECK(dtype_size(DType::b8) == 1);
  CHECK(dtype_of<bool>() == DType::b8);
  CHECK_FALSE(is_floating(DType::b8));
  Tensor m = tensor({1, 0, 2.5, -1}, {2, 2}, DType::b8);  // nonzero is true
  CHECK(m.dtype() == DType::b8);
  check_values(m, {1, 0, 1, 1});
  CHECK(m.data<bool>()[1] == false);
  CHECK(m.at({1, 0}) == 1);
  CHECK(zeros({3}, DType::b8).to_vector() == std::vector<double>{0, 0, 0});
  CHECK(ones({2}, DType::b8).to_vector() == std::vector<double>{1, 1});
  CHECK(full({2}, 0.0, DType::b8).to_vector() == std::vector<double>{0, 0});
  CHECK(scalar(3, DType::b8).item() == 1);
  std::ostringstream os;
  os << tensor({1, 0}, DType::b8);
  CHECK(os.str() == "tensor([True, False], shape=[2], dtype=bool)");
  // to() among all four dtypes
  Tensor x = tensor({-1.5, 0, 2.75, std::nan("")}, DType::f64);
  check_values(x.to(DType::b8), {1, 0, 1, 1});  // NaN is true, as PyTorch
  check_values(slice(x, 0, 0, 3).to(DType::i64), {-1, 0, 2});  // truncation
  check_values(m.to(DType::i64), {1, 0, 1, 1});
  check_values(m.to(DType::f32), {1, 0, 1, 1});
  check_values(index_tensor({0, 5, -3}).to(DType::b8), {0, 1, 1});
  for (DType a : kAll)
    for (DType b : kAll) {
      Tensor t = tensor({0, 1}, a).to(b);
      CHECK(t.dtype() == b);
      check_values(t, {0, 1});
    }
}

TEST_CASE("dtype switches handle every dtype and refuse an unknown code") {
  const DType bad = static_cast<DType>(9);
  CHECK(contains(message_of<DTypeError>([&] { (void)dtype_size(bad); }), "unknown dtype code 9"));
  CHECK(contains(message_of<DTypeError>([&] { (void)is_floating(bad); }), "unknown dtype code 9"));
  CHECK(contains(message_of<DTypeError>([&] { (void)promote_types(bad, DType::f32); }), "unknown dtype code 9"));
  CHECK(std::string(dtype_name(bad)) == "?");
}

TEST_CASE("promotion table, row by row (promote_types and tensor-tensor ops)") {
  // rows: bool, int64, float32, float64; columns likewise
  const DType expect[4][4] = {{DType::b8, DType::i64, DType::f32, DType::f64},
                              {DType::i64, DType::i64, DType::f32, DType::f64},
                              {DType::f32, DType::f32, DType::f32, DType::f64},
                              {DType::f64, DType::f64, DType::f64, DType::f64}};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      INFO(dtype_name(kAll[i]) << " with " << dtype_name(kAll[j]));
      CHECK(promote_types(kAll[i], kAll[j]) == expect[i][j]);
      Tensor a = ones({2}, kAll[i]), b = ones({2}, kAll[j]);
      CHECK(result_type(a, b) == expect[i][j]);
      CHECK(add(a, b).dtype() == expect[i][j]);
      CHECK(mul(a, b).dtype() == expect[i][j]);
      CHECK(maximum(a, b).dtype() == expect[i][j]);
      CHECK(where(ones({2}, DType::b8), a, b).dtype() == expect[i][j]);
      CHECK(eq(a, b).dtype() == DType::b8);
      check_values(eq(a, b), {1, 1});
      CHECK(div(a, b).dtype() == (is_floating(expect[i][j]) ? expect[i][j] : DType::f32));  // true division
    }
  check_values(add(tensor({1, 0}, DType::b8), tensor({1, 0}, DType::b8)), {1, 0});        // or
  check_values(mul(tensor({1, 1}, DType::b8), tensor({1, 0}, DType::b8)), {1, 0});        // and
  check_values(add(index_tensor({1, 2}), tensor({0.5, 0.25}, DType::f32)), {1.5, 2.25});
  check_values(div(index_tensor({7, -7}), index_tensor({2, 2})), {3.5, -3.5});
}

TEST_CASE("promotion: a scalar does not promote a tensor of its category, nor does a 0-d tensor") {
  // tensor dtype x scalar kind -> result
  CHECK((ones({2}, DType::f32) + 2.5).dtype() == DType::f32);
  CHECK((ones({2}, DType::f64) + 2).dtype() == DType::f64);
  CHECK((ones({2}, DType::f32) * 3).dtype() == DType::f32);
  CHECK((index_tensor({1, 2}) + 2).dtype() == DType::i64);
  check_values(index_tensor({1, 2}) * 3, {3, 6});
  CHECK((index_tensor({1, 2}) * 2.5).dtype() == DType::f32);  // PyTorch: int_tensor * 2.5 is float32
  check_values(index_tensor({1, 2}) * 2.5, {2.5, 5});
  CHECK((index_tensor({1, 2}) * 2.0).dtype() == DType::f32);  // 2.0 is a floating scalar, 2 is not
  Tensor m = tensor({1, 0}, DType::b8);
  CHECK((m + 1).dtype() == DType::i64);
  check_values(m + 1, {2, 1});
  CHECK((m + true).dtype() == DType::b8);
  CHECK((m * 2.5).dtype() == DType::f32);
  check_values(m * 2.5, {2.5, 0});
  CHECK(result_type(index_tensor({1}), Scalar(int64_t(3))) == DType::i64);
  CHECK(result_type(ones({1}, DType::f64), Scalar(1.5f)) == DType::f64);
  // 0-d tensors: do not promote a dimensioned tensor of the same or a higher category
  CHECK(add(ones({3}, DType::f32), scalar(1, DType::f64)).dtype() == DType::f32);
  CHECK(add(scalar(1, DType::f64), ones({3}, DType::f32)).dtype() == DType::f32);
  CHECK(add(index_tensor({1, 2, 3}), scalar(1, DType::f64)).dtype() == DType::f64);  // higher category
  CHECK(add(ones({3}, DType::b8), scalar(1, DType::i64)).dtype() == DType::i64);
  CHECK(add(index_tensor({1, 2, 3}), scalar(1, DType::b8)).dtype() == DType::i64);
  CHECK(add(scalar(1, DType::f32), scalar(1, DType::f64)).dtype() == DType::f64);  // both 0-d: the table
  // scalar forms that divide
  CHECK((index_tensor({3}) / 2).dtype() == DType::f32);
  check_values(index_tensor({3}) / 2, {1.5});
  check_values(2 / index_tensor({4}), {0.5});
  check_values(1 - index_tensor({4}), {-3});
  CHECK((1 - index_tensor({4})).dtype() == DType::i64);
}

TEST_CASE("gradients flow back through a promoting op in each input's own dtype") {
  Tensor a = tensor({1, 2, 3}, DType::f32).requires_grad_();
  Tensor b = tensor({0.5, -1, 4}, DType::f64).requires_grad_();
  Tensor y = mul(a, b);
  CHECK(y.dtype() == DType::f64);
  sum(y).backward();
  REQUIRE(a.grad().defined());
  CHECK(a.grad().dtype() == DType::f32);
  CHECK(b.grad().dtype() == DType::f64);
  check_values(a.grad(), {0.5, -1, 4});
  check_values(b.grad(), {1, 2, 3});
  // with an int64 and a bool operand: only the floating input gets a gradient
  Tensor w = tensor({1, 2}, DType::f32).requires_grad_();
  Tensor z = add(mul(w, index_tensor({3, -1})), tensor({1, 0}, DType::b8));
  CHECK(z.dtype() == DType::f32);
  check_values(z, {4, -2});
  sum(z).backward();
  check_values(w.grad(), {3, -1});
  // where promotes its branches
  Tensor p = tensor({1, 2}, DType::f32).requires_grad_();
  Tensor q = where(tensor({1, 0}, DType::b8), p, index_tensor({7, 8}));
  CHECK(q.dtype() == DType::f32);
  check_values(q, {1, 8});
  sum(q).backward();
  check_values(p.grad(), {1, 0});
}

TEST_CASE("comparisons return bool, in tensor and scalar forms, on all dtypes, with NaN") {
  const double nan = std::nan("");
  Tensor x = tensor({1, 2, nan, 4});
  Tensor y = tensor({1, 3, nan, 3});
  check_values(eq(x, y), {1, 0, 0, 0});  // NaN == NaN is false
  check_values(ne(x, y), {0, 1, 1, 1});
  check_values(lt(x, y), {0, 1, 0, 0});
  check_values(le(x, y), {1, 1, 0, 0});
  check_values(gt(x, y), {0, 0, 0, 1});
  check_values(ge(x, y), {1, 0, 0, 1});
  for (const Tensor& t : {eq(x, y), ne(x, 2), lt(x, 2.5), le(x, 2), gt(x, 0.5), ge(x, 4)}) CHECK(t.dtype() == DType::b8);
  check_values(eq(x, 2), {0, 1, 0, 0});
  check_values(ne(x, 2), {1, 0, 1, 1});
  check_values(lt(x, 2.5), {1, 1, 0, 0});
  check_values(le(x, 2), {1, 1, 0, 0});
  check_values(gt(x, 0.5), {1, 1, 0, 1});
  check_values(ge(x, 4), {0, 0, 0, 1});
  // int64: exact, and against a fractional scalar (compared in float32)
  Tensor i = index_tensor({-3, 0, 5, std::numeric_limits<int64_t>::max()});
  check_values(gt(i, 0), {0, 0, 1, 1});
  check_values(lt(i, -2.5), {1, 0, 0, 0});
  CHECK(eq(index_tensor({(int64_t(1) << 53) + 1}), index_tensor({int64_t(1) << 53})).item() == 0);  // no rounding
  // mixed dtypes and broadcasting
  check_values(eq(index_tensor({1, 2}), tensor({1.0, 2.5}, DType::f64)), {1, 0});
  check_values(lt(tensor({1, 0}, DType::b8), index_tensor({2, -1})), {1, 0});
  Tensor g = gt(tensor({1, 2, 3, 4}, {2, 2}), tensor({2, 1}));
  CHECK(g.shape() == Shape{2, 2});
  check_values(g, {0, 1, 1, 1});
  // bool with bool
  Tensor t = tensor({1, 0}, DType::b8), f = tensor({1, 1}, DType::b8);
  check_values(eq(t, f), {1, 0});
  check_values(gt(f, t), {0, 1});
  // no gradient
  Tensor r = randn({3}).requires_grad_();
  CHECK_FALSE(gt(r, 0.0).requires_grad());
  CHECK_FALSE(eq(r, r).requires_grad());
}

TEST_CASE("logical ops: bool results, nonzero is true (NaN included)") {
  Tensor a = tensor({0, 1, 0, 1}, DType::b8), b = tensor({0, 0, 1, 1}, DType::b8);
  check_values(logical_and(a, b), {0, 0, 0, 1});
  check_values(logical_or(a, b), {0, 1, 1, 1});
  check_values(logical_xor(a, b), {0, 1, 1, 0});
  check_values(logical_not(a), {1, 0, 1, 0});
  Tensor f = tensor({0, -2, std::nan(""), 0.5});
  CHECK(logical_not(f).dtype() == DType::b8);
  check_values(logical_not(f), {1, 0, 0, 0});
  check_values(logical_and(f, index_tensor({5, 5, 0, 1})), {0, 1, 0, 1});
  check_values(logical_or(index_tensor({0, 0, 3, 0}), tensor({0, 1, 0, 0}, DType::b8)), {0, 1, 1, 0});
  check_values(logical_xor(tensor({1, 2}, {2, 1}), tensor({0, 1})), {1, 0, 1, 0});  // broadcast
}

TEST_CASE("where takes a bool condition and refuses others") {
  Tensor c = tensor({1, 0, 1}, DType::b8);
  check_values(where(c, tensor({1, 2, 3}), scalar(-1)), {1, -1, 3});
  check_values(where(c, index_tensor({1, 2, 3}), index_tensor({9})), {1, 9, 3});
  CHECK(where(c, index_tensor({1, 2, 3}), index_tensor({9})).dtype() == DType::i64);
  check_values(where(c, tensor({0, 0, 0}, DType::b8), tensor({1}, DType::b8)), {0, 1, 0});
  auto msg = message_of<DTypeError>([&] { where(tensor({1, 0, 1}), tensor({1, 2, 3}), scalar(-1)); });
  CHECK(contains(msg, "tapegrad::where: the condition must be bool, got float32 [3]"));
  CHECK(contains(message_of<DTypeError>([&] { where(index_tensor({1}), scalar(1), scalar(2)); }), "got int64 [1]"));
  // nothing recorded on error
  Tensor x = randn({3}).requires_grad_();
  CHECK_THROWS_AS(where(x, x, x), DTypeError);
  CHECK_THROWS_AS(where(c, x, randn({4})), ShapeError);
}

TEST_CASE("int64 arithmetic: add, sub, mul, neg, abs, floor_divide and remainder with PyTorch's signs") {
  Tensor a = index_tensor({7, -7, 7, -7, 0, 6});
  Tensor b = index_tensor({2, 2, -2, -2, 3, 3});
  CHECK((a + b).dtype() == DType::i64);
  check_values(a + b, {9, -5, 5, -9, 3, 9});
  check_values(a - b, {5, -9, 9, -5, -3, 3});
  check_values(a * b, {14, -14, -14, 14, 0, 18});
  check_values(neg(a), {-7, 7, -7, 7, 0, -6});
  check_values(abs(a), {7, 7, 7, 7, 0, 6});
  check_values(sign(a), {1, -1, 1, -1, 0, 1});
  check_values(floor_divide(a, b), {3, -4, -4, 3, 0, 2});  // rounds toward −inf
  check_values(remainder(a, b), {1, 1, -1, -1, 0, 0});     // the divisor's sign
  CHECK(floor_divide(a, b).dtype() == DType::i64);
  CHECK(remainder(a, b).dtype() == DType::i64);
  check_values(floor_divide(a, 2), {3, -4, 3, -4, 0, 3});
  check_values(remainder(a, -3), {-2, -1, -2, -1, 0, 0});
  // exact beyond 2^53
  const int64_t big = (int64_t(1) << 53) + 1;
  CHECK((index_tensor({big}) + 2).data<int64_t>()[0] == big + 2);
  CHECK(floor_divide(index_tensor({std::numeric_limits<int64_t>::min()}), -1).data<int64_t>()[0] ==
        std::numeric_limits<int64_t>::min());  // wraps, as PyTorch
  // floating floor_divide / remainder follow the same signs
  Tensor x = tensor({7.5, -7.5, 7.5, -7.5}, DType::f64), y = tensor({2, 2, -2, -2}, DType::f64);
  check_values(floor_divide(x, y), {3, -4, -4, 3});
  check_values(remainder(x, y), {1.5, 0.5, -0.5, -1.5});
  check_values(remainder(tensor({-1.0}), 0.75), {0.5});
  check_values(floor_divide(tensor({1.0, -1.0}), 0.0), {INFINITY, -INFINITY});
  // mixed: int64 by float promotes
  CHECK(floor_divide(index_tensor({7}), 2.0).dtype() == DType::f32);
  // integer division by zero is a clear error
  auto msg = message_of<std::invalid_argument>([&] { floor_divide(a, index_tensor({1, 1, 0, 1, 1, 1})); });
  CHECK(contains(msg, "tapegrad::floor_divide: integer division by zero (int64 [6] by int64 [6]"));
  CHECK(contains(message_of<std::invalid_argument>([&] { remainder(a, 0); }), "tapegrad::remainder: integer division by zero"));
  CHECK(contains(message_of<std::invalid_argument>([&] { floor_divide(a, 0); }), "by the scalar 0"));
}

TEST_CASE("bool arithmetic where PyTorch refuses it") {
  Tensor m = tensor({1, 0}, DType::b8);
  CHECK(contains(message_of<DTypeError>([&] { sub(m, m); }), "tapegrad::sub: subtracting bool tensors (bool [2] and bool [2])"));
  CHECK(contains(message_of<DTypeError>([&] { neg(m); }), "tapegrad::neg: negating a bool tensor [2]"));
  CHECK(contains(message_of<DTypeError>([&] { (void)(1 - m); }), "logical_not"));
  CHECK(contains(message_of<DTypeError>([&] { (void)(m - 1); }), "tapegrad::sub: subtracting with a bool tensor [2]"));
  CHECK(contains(message_of<DTypeError>([&] { sub(index_tensor({1, 2}), m); }), "tapegrad::sub"));
  CHECK(contains(message_of<DTypeError>([&] { abs(m); }), "tapegrad::abs: not supported on bool"));
  CHECK(contains(message_of<DTypeError>([&] { floor_divide(m, m); }), "tapegrad::floor_divide: not supported on bool"));
  CHECK(contains(message_of<DTypeError>([&] { exp(m); }), "tapegrad::exp: expected a floating tensor"));
  check_values(m + 1, {2, 1});  // bool + int scalar is int64 (addition is allowed)
}

TEST_CASE("reductions on int64 and bool") {
  Tensor i = index_tensor({3, -1, 4, 1, -5, 9}, {2, 3});
  CHECK(sum(i).dtype() == DType::i64);
  CHECK(sum(i).item() == 11);
  check_values(sum(i, {0}), {4, -6, 13});
  check_values(sum(i, {1}), {6, 5});
  const int64_t big = (int64_t(1) << 53) + 1;
  CHECK(sum(index_tensor({big, 1})).data<int64_t>()[0] == big + 1);  // exact, no double on the way
  check_values(max(i, {1}), {4, 9});
  check_values(min(i, {0}), {1, -5, 4});
  CHECK(max(i).item() == 9);
  check_values(argmax(i, 1), {2, 2});
  check_values(argmax(index_tensor({2, 5, 5})), {1});  // first maximum
  Tensor m = tensor({1, 0, 1, 1, 0, 0}, {2, 3}, DType::b8);
  CHECK(sum(m).dtype() == DType::i64);
  CHECK(sum(m).item() == 3);
  check_values(sum(m, {1}), {2, 1});
  CHECK(max(m, {1}).dtype() == DType::b8);
  check_values(max(m, {1}), {1, 1});  // any
  check_values(min(m, {0}), {1, 0, 0});  // all
  check_values(argmax(m, 1), {0, 0});
  check_values(argmax(tensor({0, 0, 1}, DType::b8)), {2});
  CHECK(contains(message_of<DTypeError>([&] { mean(i); }), "tapegrad::mean: needs a floating tensor, got int64 [2, 3]"));
  CHECK(contains(message_of<DTypeError>([&] { var(m); }), "tapegrad::var: needs a floating tensor, got bool"));
}

TEST_CASE("int64 and bool tensors never require grad") {
  auto msg = message_of<DTypeError>([] { index_tensor({1, 2}).requires_grad_(); });
  CHECK(contains(msg, "tapegrad::requires_grad_: only floating tensors (float32, float64) can require grad, got int64 [2]"));
  CHECK(contains(message_of<DTypeError>([] { zeros({1}, DType::b8).requires_grad_(); }), "got bool [1]"));
  Tensor ok = index_tensor({1});
  ok.requires_grad_(false);  // turning it off is fine
  CHECK_FALSE(ok.requires_grad());
  // ops on a floating tensor that produce int64/bool results have no gradient
  Tensor x = randn({4}).requires_grad_();
  CHECK_FALSE(argmax(x).requires_grad());
  CHECK_FALSE(floor_divide(x, 2.0).requires_grad());
  CHECK(remainder(x, 2.0).requires_grad());
}
