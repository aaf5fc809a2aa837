// The README's examples, compiled and run so that they stay true.
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"

using namespace tapegrad;

namespace {
// y = x³,  dy/dx = 3x²
Tensor cube(const Tensor& x) {
  return custom_op(
      "cube", {x}, [](const std::vector<Tensor>& in) { return in[0] * in[0] * in[0]; },
      [](const std::vector<Tensor>& in, const Tensor& grad, const Tensor& /*result*/) -> Grads {
        return {grad * in[0] * in[0] * 3.0};
      });
}
}  // namespace

TEST_CASE("README: the core API in ten lines") {
  Tensor x = randn({32, 784});
  Tensor w = (randn({784, 10}) * 0.01).detach().requires_grad_();
  Tensor b = zeros({10}).requires_grad_();
  Tensor loss = mean(logsumexp(matmul(x, w) + b, {1}));
  loss.backward();
  CHECK(w.grad().shape() == Shape{784, 10});
  CHECK(b.grad().shape() == Shape{10});
  Tensor g = grad({sum(tanh(w))}, {w}, {}, false, /*create_graph=*/true)[0];
  CHECK(g.requires_grad());
  float before = w.data<float>()[0];
  {
    NoGradGuard no_grad;
    w.mutable_data<float>()[0] -= 0.1f * w.grad().data<float>()[0];
  }
  CHECK(w.data<float>()[0] == doctest::Approx(before - 0.1f * w.grad().data<float>()[0]));
}

TEST_CASE("README: add an op and check its gradient") {
  auto fn = [](const std::vector<Tensor>& in) { return cube(in[0]); };
  Tensor x = randn({3, 4}, DType::f64).requires_grad_();
  GradcheckResult r1 = gradcheck(fn, {x});
  GradcheckResult r2 = gradgradcheck(fn, {x});
  CHECK_MESSAGE(r1.ok, r1.message);
  CHECK_MESSAGE(r2.ok, r2.message);
  register_op({"cube", "custom", fn,
               [] { return std::vector<OpSample>{{{randn({3}, DType::f64).requires_grad_()}, "1-D"}}; }});
  CHECK(find_op("cube").family == "custom");
}
