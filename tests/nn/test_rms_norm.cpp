// rms_norm / nn::RMSNorm and gelu's two forms / nn::GELU against PyTorch 1.13's values
// (scripts/make_loss_reference.py: rms_norm written out by its formula, since 1.13 has no
// F.rms_norm), the fused first-order backward against the recorded one, and the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"
#include "nn/reference_util.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;
using test::check_close;
using test::reference_input;

namespace {
#include "nn/loss_reference.inc"
}  // namespace

TEST_CASE("rms_norm matches PyTorch's formula: two trailing dims with weight, one dim with eps") {
  Tensor x = reference_input({2, 3, 4}, 0.2);
  check_close(F::rms_norm(x, {3, 4}, reference_input({3, 4}, 1.9)).to_vector(), rms_x_over_34_w);
  check_close(F::rms_norm(x, {4}, Tensor(), 1e-2).to_vector(), rms_x_over_4_eps);
  // default eps is float32's machine epsilon: it matters for tiny inputs
  Tensor tiny = reference_input({2, 3}, 0.2, DType::f32) * 1e-4;
  check_close(F::rms_norm(tiny, {3}).to_vector(), rms_f32_default_eps, 1e-6);
  CHECK(F::rms_norm(tiny, {3}).to_vector() != F::rms_norm(tiny, {3}, Tensor(), 0.0).to_vector());
}

TEST_CASE("rms_norm's gradients match PyTorch, fused and recorded (create_graph)") {
  Tensor x = reference_input({2, 3, 4}, 0.2).requires_grad_();
  Tensor w = reference_input({3, 4}, 1.9).requires_grad_();
  Tensor c = reference_input({2, 3, 4}, 2.4);
  for (bool create_graph : {false, true}) {
    CAPTURE(create_graph);
    auto g = grad({sum(F::rms_norm(x, {3, 4}, w) * c)}, {x, w}, {}, false, create_graph);
    check_close(g[0].to_vector(), rms_grad_x);
    check_close(g[1].to_vector(), rms_grad_w);
  }
  // only the weight needs a gradient: the input's is skipped, the weight's unchanged
  Tensor xd = x.detach();
  check_close(grad({sum(F::rms_norm(xd, {3, 4}, w) * c)}, {w})[0].to_vector(), rms_grad_w);
}

TEST_CASE("nn::RMSNorm: a parameter named weight of ones, PyTorch's default eps, errors") {
  nn::RMSNorm norm({4});
  auto params = norm.named_parameters();
  REQUIRE(params.size() == 1);
  CHECK(params[0].first == "weight");
  CHECK(params[0].second.to_vector() == std::vector<double>{1, 1, 1, 1});
  Tensor x = reference_input({3, 4}, 0.5, DType::f32);
  CHECK(norm(x).to_vector() == F::rms_norm(x, {4}).to_vector());
  CHECK(nn::RMSNorm(nn::RMSNormOptions({4}).eps(1e-2).elementwise_affine(false)).named_parameters().empty());
  check_close(nn::RMSNorm(nn::RMSNormOptions({4}).eps(1e-2).elementwise_affine(false))(reference_input({2, 3, 4}, 0.2)).to_vector(), rms_x_over_4_eps);
  CHECK_THROWS_AS(nn::RMSNorm(Shape{}), std::invalid_argument);
  CHECK_THROWS_AS(nn::RMSNorm(nn::RMSNormOptions({4}).eps(-1.0)), std::invalid_argument);
  CHECK_THROWS_WITH_AS(F::rms_norm(zeros({3, 5}), {4}), doctest::Contains("rms_norm: input [3, 5] does not end with normalized_shape [4]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(F::rms_norm(zeros({3, 4}), {4}, ones({3})), doctest::Contains("rms_norm: weight/bias of shape [3]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(F::rms_norm(zeros({3, 4}), {4}, ones({4}, DType::f64)), doctest::Contains("weight is float64"),
                       DTypeError);
}

TEST_CASE("gelu, exact and tanh: values, first and second derivatives match PyTorch") {
  Tensor x = tensor(gelu_x, DType::f64).requires_grad_();
  struct Form {
    GeluApproximate a;
    const std::vector<double> *y, *d1, *d2;
  };
  for (const Form& f : {Form{GeluApproximate::none, &gelu_none, &gelu_none_d1, &gelu_none_d2},
                        Form{GeluApproximate::tanh, &gelu_tanh, &gelu_tanh_d1, &gelu_tanh_d2}}) {
    CAPTURE(static_cast<int>(f.a));
    Tensor y = gelu(x, f.a);
    check_close(y.to_vector(), *f.y, 1e-14);
    Tensor d1 = grad({sum(y)}, {x}, {}, true, /*create_graph=*/true)[0];
    check_close(d1.to_vector(), *f.d1, 1e-14);
    check_close(grad({sum(d1)}, {x})[0].to_vector(), *f.d2, 1e-12);
    // float32, through the vectorised kernel's full batches and its padded tail (17 elements)
    Tensor x32 = reference_input({17}, 0.1, DType::f32).requires_grad_();
    Tensor x64 = x32.detach().to(DType::f64).requires_grad_();
    check_close(gelu(x32, f.a).to_vector(), gelu(x64, f.a).to_vector(), 1e-6);
    sum(gelu(x32, f.a)).backward();
    sum(gelu(x64, f.a)).backward();
    check_close(x32.grad().to_vector(), x64.grad().to_vector(), 1e-6);
  }
  CHECK(gelu(x, GeluApproximate::tanh).to_vector() != gelu(x).to_vector());
}

TEST_CASE("nn::GELU takes the approximation") {
  Tensor x = tensor(gelu_x, DType::f64);
  check_close(nn::GELU()(x).to_vector(), gelu_none, 1e-14);
  check_close(nn::GELU(GeluApproximate::tanh)(x).to_vector(), gelu_tanh, 1e-14);
  CHECK(nn::GELU(GeluApproximate::tanh).repr() == "GELU(approximate=tanh)");
}
