// Ties and boundaries: the documented gradient rules where two candidates are equal, which random
// samples (and so gradcheck) never hit.
#include <doctest/doctest.h>

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
