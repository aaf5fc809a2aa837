// Ties and boundaries: the documented gradient rules where two candidates are equal, which random
// samples (and so gradcheck) never hit.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "autograd/autograd.hpp"

using namespace tapegrad;

TEST_CASE("maximum and minimum split the gradient evenly between equal operands") {
  for (bool take_max : {true, false}) {
    INFO((take_max ? "maximum" : "minimum"));
    Tensor a = tensor({1, 2, 3}).requires_grad_(), b = tensor({1, 5, 0}).requires_grad_();
    Tensor y = take_max ? maximum(a, b) : minimum(a, b);
    sum(y * tensor({10, 20, 40})).backward();  // a different upstream gradient per element
    // element 0 ties (0.5 each); elsewhere the selected operand takes it all
    if (take_max) {
      CHECK(a.grad().to_vector() == std::vector<double>{5, 0, 40});
      CHECK(b.grad().to_vector() == std::vector<double>{5, 20, 0});
    } else {
      CHECK(a.grad().to_vector() == std::vector<double>{5, 20, 0});
      CHECK(b.grad().to_vector() == std::vector<double>{5, 0, 40});
    }
  }
  // a broadcast operand tied with several elements collects half of each
  Tensor x = tensor({2, 2, 3}).requires_grad_(), s = scalar(2.0).requires_grad_();
  sum(maximum(x, s)).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0.5, 0.5, 1});
  CHECK(s.grad().item() == 1.0);
}

TEST_CASE("max and min reductions split the gradient evenly among tied positions") {
  Tensor x = tensor({3, 1, 3, 2, 2, 2}, {2, 3}).requires_grad_();
  sum(max(x, {1}) * tensor({6, 9})).backward();
  // row 0: the maximum 3 sits at two positions (3 each); row 1: three ties (3 each)
  CHECK(x.grad().to_vector() == std::vector<double>{3, 0, 3, 3, 3, 3});
  x.zero_grad();
  sum(max(x, {0}, true)).backward();  // columns: (3, 2), (1, 2), (3, 2): no tie
  CHECK(x.grad().to_vector() == std::vector<double>{1, 0, 1, 0, 1, 0});
  Tensor y = tensor({1, 4, 1, 1}, {2, 2}).requires_grad_();
  (min(y) * 3.0).backward();  // over every axis: three positions hold the minimum
  CHECK(y.grad().to_vector() == std::vector<double>{1, 0, 1, 1});
}

TEST_CASE("argmax picks the first of tied maxima") {
  CHECK(argmax(tensor({1, 3, 3}), 0).item() == 1);
  CHECK(argmax(tensor({2, 2, 1, 0, 5, 5}, {2, 3}), 1).to_vector() == std::vector<double>{0, 1});
  CHECK(argmax(tensor({7, 7, 7, 7}, {2, 2}), 0).to_vector() == std::vector<double>{0, 0});
}

TEST_CASE("clamp passes the gradient at the bounds themselves (min <= x <= max)") {
  Tensor x = tensor({-1, -0.5, 1, 2, -3}).requires_grad_();
  sum(clamp(x, -1, 1)).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{1, 1, 1, 0, 0});
}

TEST_CASE("NaN propagates through maximum, minimum and relu whichever side it is on, as in PyTorch") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (bool take_max : {true, false}) {
    INFO((take_max ? "maximum" : "minimum"));
    Tensor a = tensor({nan, 0.0, 1.0}, DType::f64).requires_grad_(), b = tensor({0.0, nan, 2.0}, DType::f64).requires_grad_();
    Tensor y = take_max ? maximum(a, b) : minimum(a, b);
    auto v = y.to_vector();
    CHECK(std::isnan(v[0]));
    CHECK(std::isnan(v[1]));
    CHECK(v[2] == (take_max ? 2.0 : 1.0));
    sum(y).backward();  // the NaN side is the selected one: it takes the gradient
    CHECK(a.grad().to_vector() == std::vector<double>{1, 0, take_max ? 0.0 : 1.0});
    CHECK(b.grad().to_vector() == std::vector<double>{0, 1, take_max ? 1.0 : 0.0});
  }
  Tensor x = tensor({nan, -1.0, 0.0, 2.0}, DType::f64).requires_grad_();
  Tensor r = relu(x);
  CHECK(std::isnan(r.to_vector()[0]));
  CHECK(r.to_vector()[1] == 0.0);
  sum(r).backward();  // threshold_backward: the gradient passes where x is not <= 0 (NaN included)
  CHECK(x.grad().to_vector() == std::vector<double>{1, 0, 0, 1});
}

TEST_CASE("pow's gradient is 0 where the exponent is 0, at a base of 0 too (not 0 * inf)") {
  Tensor x = tensor({0.0, 2.0}, DType::f64).requires_grad_();
  sum(pow(x, 0.0)).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 0});
  Tensor a = tensor({0.0, 2.0}, DType::f64).requires_grad_();
  Tensor e = tensor({0.0, 0.0}, DType::f64).requires_grad_();
  sum(pow(a, e)).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{0, 0});
  CHECK(e.grad().to_vector()[0] == 0.0);                                      // 0^b·ln 0 taken as 0 (b >= 0)
  CHECK(e.grad().to_vector()[1] == doctest::Approx(std::log(2.0)));           // 2^0·ln 2
  Tensor y = tensor({3.0}, DType::f64).requires_grad_();
  sum(pow(y, tensor({2.0}, DType::f64))).backward();  // elsewhere the formula is unchanged
  CHECK(y.grad().item() == 6.0);
}
