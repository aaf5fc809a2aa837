#include <doctest/doctest.h>
#include "autograd/engine.hpp"
#include "autograd/functions.hpp"
using namespace tapegrad;
TEST_CASE("smoke") {
  Tensor x = tensor({1, 2, 3, 4}, {2, 2}).requires_grad_();
  Tensor w = tensor({0.5, -1, 2, 1}, {2, 2}).requires_grad_();
  Tensor y = sum(tanh(matmul(x, w) + 1.0));
  y.backward();
  CHECK(x.grad().defined());
  CHECK(w.grad().shape() == Shape{2, 2});
}
