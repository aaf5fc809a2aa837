// Gradient evidence for every registered op, and proof that the checker catches wrong gradients.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.hpp"
#include "autograd/registry_check.hpp"

using namespace tapegrad;

TEST_CASE("every registered op passes gradcheck and gradgradcheck in float64") {
  int checked = 0;
  for (const OpInfo& op : op_registry()) {
    for (const OpSample& sample : op.samples()) {
      INFO(op.name << " / " << sample.description);
      test::check_registered_op(op, sample);
      ++checked;
    }
  }
  CHECK(checked >= 80);
}

namespace {
/// x² with a deliberately wrong backward (3x instead of 2x).
Tensor wrong_square(const Tensor& x) {
  return custom_op(
      "wrong_square", {x}, [](const std::vector<Tensor>& in) { return in[0] * in[0]; },
      [](const std::vector<Tensor>& in, const Tensor& grad, const Tensor&) -> Grads { return {grad * in[0] * 3.0}; });
}
Tensor right_square(const Tensor& x) {
  return custom_op(
      "right_square", {x}, [](const std::vector<Tensor>& in) { return in[0] * in[0]; },
      [](const std::vector<Tensor>& in, const Tensor& grad, const Tensor&) -> Grads { return {grad * in[0] * 2.0}; });
}
}  // namespace

TEST_CASE("gradcheck catches a wrong gradient and reports input, index and values") {
  Tensor x = tensor({1.0, -2.0, 0.5, 3.0}, {2, 2}, DType::f64).requires_grad_();
  auto fn = [](const std::vector<Tensor>& in) { return wrong_square(in[0]); };
  GradcheckResult r = gradcheck(fn, {x});
  CHECK_FALSE(r.ok);
  CHECK(r.input == 0);
  REQUIRE(r.index.size() == 2);
  // the worst element is the largest |x|: x[1][1] = 3, analytic 9 vs numeric 6
  CHECK(r.index == std::vector<int64_t>{1, 1});
  CHECK(r.analytic == doctest::Approx(9.0));
  CHECK(r.numeric == doctest::Approx(6.0).epsilon(1e-6));
  CHECK(r.message.find("input 0") != std::string::npos);
  CHECK(r.message.find("[1, 1]") != std::string::npos);
  CHECK(r.message.rfind("gradcheck of 'wrong_square': Jacobian mismatch", 0) == 0);  // one op: named
  auto composite = [](const std::vector<Tensor>& in) { return wrong_square(in[0]) + in[0]; };
  CHECK(gradcheck(composite, {x}).message.rfind("gradcheck: Jacobian mismatch", 0) == 0);
  CHECK_THROWS_AS(gradcheck(fn, {x}, GradcheckOptions().set_raise(true)), AutogradError);

  // fast mode catches it too, and the right gradient passes both modes
  CHECK_FALSE(gradcheck(fn, {x}, GradcheckOptions().set_fast_mode(true)).ok);
  auto good = [](const std::vector<Tensor>& in) { return right_square(in[0]); };
  CHECK(gradcheck(good, {x}).ok);
  CHECK(gradcheck(good, {x}, GradcheckOptions().set_fast_mode(true)).ok);
}

TEST_CASE("gradgradcheck catches a backward whose own gradient is wrong") {
  // backward written with a raw (non-differentiable) copy of x: first order right, second order wrong
  auto fn = [](const std::vector<Tensor>& in) {
    return custom_op(
        "square_detached_backward", {in[0]}, [](const std::vector<Tensor>& i) { return i[0] * i[0]; },
        [](const std::vector<Tensor>& i, const Tensor& grad, const Tensor&) -> Grads {
          return {grad * i[0].detach() * 2.0};
        });
  };
  Tensor x = tensor({1.0, -2.0, 0.5}, DType::f64).requires_grad_();
  CHECK(gradcheck(fn, {x}).ok);
  GradcheckResult r = gradgradcheck(fn, {x});
  CHECK_FALSE(r.ok);
  CHECK(r.message.find("second order") != std::string::npos);
}

TEST_CASE("gradcheck checks gradient shapes and needs float64") {
  auto bad_shape = [](const std::vector<Tensor>& in) {
    return custom_op(
        "bad_shape", {in[0]}, [](const std::vector<Tensor>& i) { return sum(i[0]); },
        [](const std::vector<Tensor>&, const Tensor& grad, const Tensor&) -> Grads { return {grad}; });
  };
  Tensor x = tensor({1.0, 2.0}, DType::f64).requires_grad_();
  GradcheckResult shape = gradcheck(bad_shape, {x});  // a failed result, not an exception
  CHECK_FALSE(shape.ok);
  CHECK(shape.message.find("the backward of 'bad_shape' returned a gradient of shape []") != std::string::npos);
  CHECK_THROWS_WITH_AS(gradcheck(bad_shape, {x}, GradcheckOptions().set_raise(true)), doctest::Contains("bad_shape"),
                       AutogradError);
  Tensor f = tensor({1.0, 2.0}).requires_grad_();
  CHECK_THROWS_WITH_AS(gradcheck([](const std::vector<Tensor>& in) { return sum(in[0]); }, {f}),
                       doctest::Contains("float64"), AutogradError);
}

TEST_CASE("gradcheck rejects a backward that is not reentrant or leaks gradient from zero") {
  static int calls = 0;
  // drifts by 1e-9 per call: within tolerance of the numeric Jacobian, but two runs differ
  auto drifting = [](const std::vector<Tensor>& in) {
    return custom_op(
        "drifting", {in[0]}, [](const std::vector<Tensor>& i) { return i[0] * 2.0; },
        [](const std::vector<Tensor>&, const Tensor& grad, const Tensor&) -> Grads {
          return {grad * (2.0 + 1e-9 * ++calls)};
        });
  };
  Tensor x = tensor({1.0, 2.0}, DType::f64).requires_grad_();
  GradcheckResult r1 = gradcheck(drifting, {x});
  CHECK_FALSE(r1.ok);
  CHECK(r1.message.find("reentrant") != std::string::npos);
  auto leaky = [](const std::vector<Tensor>& in) {
    return custom_op(
        "leaky", {in[0]}, [](const std::vector<Tensor>& i) { return i[0] * 2.0; },
        [](const std::vector<Tensor>&, const Tensor& grad, const Tensor&) -> Grads {
          // right whenever grad is a one-hot vector, but not linear in grad: 0 maps to non-zero
          return {grad * 2.0 + (1.0 - sum(abs(grad))) * 1e-3};
        });
  };
  GradcheckResult r2 = gradcheck(leaky, {x});
  CHECK_FALSE(r2.ok);
  CHECK(r2.message.find("zero output gradient") != std::string::npos);
}

TEST_CASE("gradcheck fails a NaN analytic gradient as a Jacobian mismatch") {
  // a smooth function whose backward returns NaN: |NaN − numeric| > tol is false, so it needs its own test
  auto nan_backward = [](const std::vector<Tensor>& in) {
    return custom_op(
        "nan_backward", {in[0]}, [](const std::vector<Tensor>& i) { return i[0] * 2.0; },
        [](const std::vector<Tensor>&, const Tensor& grad, const Tensor&) -> Grads { return {grad * NAN}; });
  };
  Tensor x = tensor({1.0, 2.0}, DType::f64).requires_grad_();
  GradcheckResult r = gradcheck(nan_backward, {x});
  CHECK_FALSE(r.ok);
  CHECK(r.message.find("Jacobian mismatch") != std::string::npos);
  CHECK(std::isnan(r.analytic));
  CHECK_FALSE(gradcheck(nan_backward, {x}, GradcheckOptions().set_fast_mode(true)).ok);
}

TEST_CASE("a user op registered like a built-in is checked like one") {
  register_op({"user_cube", "custom",
               [](const std::vector<Tensor>& in) {
                 return custom_op(
                     "user_cube", {in[0]}, [](const std::vector<Tensor>& i) { return i[0] * i[0] * i[0]; },
                     [](const std::vector<Tensor>& i, const Tensor& grad, const Tensor&) -> Grads {
                       return {grad * i[0] * i[0] * 3.0};
                     });
               },
               [] { return std::vector<OpSample>{{{randn({2, 3}, DType::f64).requires_grad_()}, "2-D"}}; }});
  const OpInfo& op = find_op("user_cube");
  for (auto& s : op.samples()) {
    CHECK(gradcheck(op.fn, s.inputs).ok);
    CHECK(gradgradcheck(op.fn, s.inputs).ok);
  }
  CHECK_THROWS_AS(find_op("no_such_op"), std::out_of_range);
}
