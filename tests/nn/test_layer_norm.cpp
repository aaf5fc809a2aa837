// layer_norm, one fused op, against the composite of core ops it replaced (mean, var, sub, div,
// sqrt, mul, add): values and the three gradients in float64 to 1e-12 over shapes with full xsimd
// batches and tails, rows of length 1, two normalised dims and every weight/bias combination;
// float32 close; second order (create_graph) equal; only the gradients asked for are computed.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"
#include "nn/reference_util.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;
using test::check_close;
using test::reference_input;

namespace {

/// The composite formula layer_norm was before it was fused (its gradients come from the core ops).
Tensor layer_norm_composite(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                            double eps = 1e-5) {
  Axes axes;
  for (size_t i = 0; i < normalized_shape.size(); ++i) axes.push_back(-static_cast<int64_t>(i) - 1);
  Tensor y = div(sub(x, mean(x, axes, true)), sqrt(add(var(x, axes, 0, true), eps)));
  if (weight.defined()) y = mul(y, weight);
  if (bias.defined()) y = add(y, bias);
  return y;
}

struct Case {
  Shape x_shape, normalized_shape;
  double offset;  // added to x: a mean far from 0 tests the centred variance
};

const std::vector<Case> cases = {
    {{3, 7}, {7}, 0.0},           // a tail only (7 < two float64 batches)
    {{5, 1}, {1}, 0.0},           // rows of length 1: zero variance, x̂ = 0
    {{2, 3, 4}, {3, 4}, 0.0},     // two normalised dims
    {{4, 37}, {37}, 100.0},       // full batches and a tail, |μ| ≫ σ
    {{2, 2, 128}, {128}, 0.0},    // the char-GPT's row length
    {{6}, {6}, -3.0},             // no leading dims
};

struct Inputs {
  Tensor x, w, b, c;  // x, γ, β require gradients; c weighs the output: the loss is Σ y·c
};

Inputs inputs(const Case& k, DType dtype = DType::f64) {
  auto leaf = [&](const Shape& s, double phase) { return reference_input(s, phase, dtype).requires_grad_(); };
  Tensor x = (reference_input(k.x_shape, 0.2) + k.offset).to(dtype).detach().requires_grad_();
  return {x, leaf(k.normalized_shape, 1.9), leaf(k.normalized_shape, 0.4), reference_input(k.x_shape, 2.4, dtype)};
}

/// Values and the gradients of Σ y·c for the inputs that require them ({x, weight, bias} in order,
/// skipping undefined ones).
std::vector<std::vector<double>> run(bool fused, const Tensor& x, const Shape& ns, const Tensor& w, const Tensor& b,
                                     const Tensor& c) {
  Tensor y = fused ? F::layer_norm(x, ns, w, b) : layer_norm_composite(x, ns, w, b);
  std::vector<Tensor> inputs;
  for (const Tensor* t : {&x, &w, &b})
    if (t->defined() && t->requires_grad()) inputs.push_back(*t);
  std::vector<std::vector<double>> out{y.to_vector()};
  for (const Tensor& g : grad({sum(mul(y, c))}, inputs)) out.push_back(g.to_vector());
  return out;
}

}  // namespace

TEST_CASE("layer_norm is one recorded op whose inputs are x, weight and bias") {
  Tensor x = reference_input({3, 4}, 0.2).requires_grad_();
  Tensor w = reference_input({4}, 1.1).requires_grad_(), b = reference_input({4}, 0.7).requires_grad_();
  Tensor y = F::layer_norm(x, {4}, w, b);
  REQUIRE(y.grad_fn() != nullptr);
  CHECK(std::string(y.grad_fn()->name()) == "layer_norm");
  REQUIRE(y.grad_fn()->next().size() == 3);
  for (const auto& edge : y.grad_fn()->next()) CHECK(edge != nullptr);  // each an input's accumulator
  CHECK(y.grad_fn()->saved_count() == 4);                              // x, weight, mean, rstd
}

TEST_CASE("layer_norm fused equals the composite in float64: values and all three gradients") {
  for (const Case& k : cases) {
    const Shape& ns = k.normalized_shape;
    for (int affine = 0; affine < 4; ++affine) {
      CAPTURE(to_string(k.x_shape));
      CAPTURE(affine);
      const Inputs in = inputs(k);
      Tensor w = affine & 1 ? in.w : Tensor(), b = affine & 2 ? in.b : Tensor();
      auto fused = run(true, in.x, ns, w, b, in.c), composite = run(false, in.x, ns, w, b, in.c);
      REQUIRE(fused.size() == composite.size());
      for (size_t i = 0; i < fused.size(); ++i) {
        CAPTURE(i);  // 0: y, then dx, dγ, dβ
        check_close(fused[i], composite[i], 1e-12);
      }
    }
  }
}

TEST_CASE("layer_norm's fused backward computes only the gradients asked for") {
  Tensor x = reference_input({4, 6}, 0.2), w = reference_input({6}, 1.9), b = reference_input({6}, 0.4);
  Tensor c = reference_input({4, 6}, 2.4);
  auto all = run(false, x.detach().requires_grad_(), {6}, w.detach().requires_grad_(), b.detach().requires_grad_(), c);
  // only the weight, only the bias, only the input
  check_close(run(true, x, {6}, w.detach().requires_grad_(), b, c)[1], all[2]);
  check_close(run(true, x, {6}, w, b.detach().requires_grad_(), c)[1], all[3]);
  check_close(run(true, x.detach().requires_grad_(), {6}, w, b, c)[1], all[1]);
}

TEST_CASE("layer_norm in float32 is close to float64") {
  for (const Case& k : cases) {
    CAPTURE(to_string(k.x_shape));
    const Shape& ns = k.normalized_shape;
    const Inputs f64 = inputs(k), f32 = inputs(k, DType::f32);
    CHECK(F::layer_norm(f32.x, ns, f32.w, f32.b).dtype() == DType::f32);
    auto want = run(false, f64.x, ns, f64.w, f64.b, f64.c), got = run(true, f32.x, ns, f32.w, f32.b, f32.c);
    // |μ| = 100 over σ ≈ 1.4 loses float32 digits in x − μ itself
    const double tol = k.offset == 100.0 ? 2e-4 : 2e-5;
    for (size_t i = 0; i < want.size(); ++i) {
      CAPTURE(i);
      check_close(got[i], want[i], tol);
    }
  }
}

TEST_CASE("layer_norm's second derivatives (create_graph) equal the composite's") {
  for (const Case& k : cases) {
    CAPTURE(to_string(k.x_shape));
    const Shape& ns = k.normalized_shape;
    const auto [x, w, b, c] = inputs(k);
    Tensor cx = reference_input(k.x_shape, 0.9), cw = reference_input(ns, 1.3);
    std::vector<std::vector<double>> got[2];
    for (bool fused : {true, false}) {
      Tensor y = fused ? F::layer_norm(x, ns, w, b) : layer_norm_composite(x, ns, w, b);
      auto g = grad({sum(mul(y, c))}, {x, w, b}, {}, true, /*create_graph=*/true);
      for (const Tensor& t : g) got[fused].push_back(t.to_vector());
      // dβ = Σ_rows c does not depend on x, w: differentiate Σ dx·cx + Σ dγ·cw
      for (const Tensor& t : grad({add(sum(mul(g[0], cx)), sum(mul(g[1], cw)))}, {x, w}))
        got[fused].push_back(t.to_vector());
    }
    for (size_t i = 0; i < got[0].size(); ++i) {
      CAPTURE(i);  // dx, dγ, dβ under create_graph, then the second-order x and w gradients
      check_close(got[1][i], got[0][i], 1e-12);
    }
  }
}

TEST_CASE("layer_norm refuses integer inputs and mixed dtypes, naming itself, and checks shapes") {
  Tensor x = reference_input({2, 4}, 0.2, DType::f32);
  Tensor w = reference_input({4}, 1.9);  // float64
  // no silent promotion to float64 (linear, conv2d, rms_norm and PyTorch refuse too)
  CHECK_THROWS_WITH_AS(F::layer_norm(x, {4}, w), "tapegrad::nn::layer_norm: weight is float64, the input is float32",
                       DTypeError);
  CHECK_THROWS_WITH_AS(F::layer_norm(x, {4}, Tensor(), w), "tapegrad::nn::layer_norm: bias is float64, the input is float32",
                       DTypeError);
  CHECK_THROWS_WITH_AS(F::layer_norm(index_tensor({1, 2, 3}, {1, 3}), {3}),
                       "tapegrad::nn::layer_norm: expected a floating input, got int64 [1, 3]", DTypeError);
  CHECK_THROWS_WITH_AS(F::layer_norm(ones({1, 3}, DType::b8), {3}), doctest::Contains("layer_norm: expected a floating input"),
                       DTypeError);
  CHECK_THROWS_WITH_AS(F::layer_norm(zeros({3, 5}), {4}), doctest::Contains("layer_norm: input [3, 5] does not end with normalized_shape [4]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(F::layer_norm(zeros({3, 4}), {4}, Tensor(), ones({3})), doctest::Contains("layer_norm: weight/bias of shape [3]"),
                       ShapeError);
}
