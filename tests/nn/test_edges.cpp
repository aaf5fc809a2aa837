// Gradients at the edges of each op's domain (exact 0 and 1, ±inf, huge equal logits) are
// finite wherever PyTorch's are, and equal to PyTorch 1.13's values (worked out from its
// derivatives.yaml formulas; each case names the formula).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;

namespace {
const double kInf = std::numeric_limits<double>::infinity();

/// d sum(f(x)) / dx in float64.
std::vector<double> grad_of(const std::function<Tensor(const Tensor&)>& f, std::vector<double> x) {
  Tensor t = tensor(x, DType::f64).requires_grad_();
  sum(f(t)).backward();
  return t.grad().to_vector();
}
}  // namespace

TEST_CASE("pow: the exponent's gradient is 0 where the base is 0 and the exponent ≥ 0") {
  // PyTorch: grad · a^b · ln a, masked to 0 where a == 0 and b >= 0 (was 0 · −inf = NaN)
  Tensor a = tensor({0, 0, 0, 2}, DType::f64).requires_grad_();
  Tensor b = tensor({2, 0.5, 0, 3}, DType::f64).requires_grad_();
  sum(pow(a, b)).backward();
  CHECK(b.grad().to_vector() == std::vector<double>{0, 0, 0, 8 * std::log(2.0)});
  CHECK(a.grad().to_vector()[0] == 0);   // b·a^(b−1) = 2·0
  CHECK(a.grad().to_vector()[3] == 12);  // 3·2²
  Tensor a2 = tensor({0.0}, DType::f64).requires_grad_(), b2 = tensor({-1.0}, DType::f64).requires_grad_();
  sum(pow(a2, b2)).backward();
  CHECK(std::isinf(b2.grad().item()));  // b < 0: 0^−1 = inf, and PyTorch keeps inf · ln 0 too
}

TEST_CASE("binary_cross_entropy at p = 0 and p = 1 has PyTorch's finite gradient") {
  // PyTorch: grad · (p − t) / max(p(1 − p), 1e-12); the composite gave 0/0 = NaN here.
  Tensor p = tensor({0, 1, 0, 1, 0.25}, DType::f64).requires_grad_();
  Tensor t = tensor({0, 1, 1, 0, 1}, DType::f64).requires_grad_();
  Tensor loss = F::binary_cross_entropy(p, t, F::Reduction::sum);
  CHECK(loss.item() == doctest::Approx(200 - std::log(0.25)));  // the logs clamp at −100
  loss.backward();
  auto gp = p.grad().to_vector();
  CHECK(gp[0] == 0);
  CHECK(gp[1] == 0);
  CHECK(gp[2] == doctest::Approx(-1e12));
  CHECK(gp[3] == doctest::Approx(1e12));
  CHECK(gp[4] == doctest::Approx(-0.75 / 0.1875));
  // target: log(1 − p) − log(p), each clamped at −100
  auto gt = t.grad().to_vector();
  CHECK(gt[0] == 100);
  CHECK(gt[1] == -100);
  CHECK(gt[4] == doctest::Approx(std::log(0.75) - std::log(0.25)));
}

TEST_CASE("cross_entropy and log_softmax with huge equal logits and -inf entries stay finite") {
  Tensor logits = tensor({1e4, 1e4, -1e4}, {1, 3}, DType::f64).requires_grad_();
  F::cross_entropy(logits, index_tensor({0})).backward();
  auto g = logits.grad().to_vector();  // softmax − onehot = [0.5 − 1, 0.5, 0]
  CHECK(g[0] == doctest::Approx(-0.5));
  CHECK(g[1] == doctest::Approx(0.5));
  CHECK(g[2] == 0);
  auto gl = grad_of([](const Tensor& x) { return log_softmax(x, 0); }, {0.0, -kInf, 1.0});
  for (double v : gl) CHECK(std::isfinite(v));
  auto gs = grad_of([](const Tensor& x) { return softmax(x, 0) * tensor({1.0, 2.0, 3.0}, DType::f64); }, {0.0, -kInf, 1.0});
  for (double v : gs) CHECK(std::isfinite(v));
  CHECK(gs[1] == 0);
}

TEST_CASE("elementwise ops at 0, at their kinks and at ±inf have PyTorch's gradients") {
  CHECK(grad_of([](const Tensor& x) { return abs(x); }, {0.0}) == std::vector<double>{0});     // sign(0)
  CHECK(grad_of([](const Tensor& x) { return relu(x); }, {0.0}) == std::vector<double>{0});    // (x > 0)
  CHECK(grad_of([](const Tensor& x) { return clamp(x, -1, 1); }, {-1.0, 1.0}) == std::vector<double>{1, 1});
  CHECK(grad_of([](const Tensor& x) { return sigmoid(x); }, {kInf, -kInf}) == std::vector<double>{0, 0});
  CHECK(grad_of([](const Tensor& x) { return tanh(x); }, {kInf, -kInf}) == std::vector<double>{0, 0});
  CHECK(grad_of([](const Tensor& x) { return exp(x); }, {-kInf}) == std::vector<double>{0});
  CHECK(grad_of([](const Tensor& x) { return softplus(x, 1.0, 20.0); }, {1e4, -1e4}) == std::vector<double>{1, 0});
  CHECK(std::isinf(grad_of([](const Tensor& x) { return sqrt(x); }, {0.0})[0]));  // PyTorch: inf too
  auto ge = grad_of([](const Tensor& x) { return gelu(x); }, {0.0, 1e4, -1e4});
  CHECK(ge == std::vector<double>{0.5, 1, 0});
}

TEST_CASE("losses and normalisation at their edges: finite where PyTorch's are") {
  auto huber = grad_of([](const Tensor& x) { return F::huber_loss(x, zeros_like(x), F::Reduction::sum, 1.0); },
                       {1.0, -1.0, 0.0});
  CHECK(huber == std::vector<double>{1, -1, 0});
  auto l1 = grad_of([](const Tensor& x) { return F::l1_loss(x, zeros_like(x), F::Reduction::sum); }, {0.0});
  CHECK(l1 == std::vector<double>{0});
  auto bce_logits = grad_of(
      [](const Tensor& x) { return F::binary_cross_entropy_with_logits(x, tensor({1.0, 0.0}, DType::f64), F::Reduction::sum); },
      {1e4, 1e4});
  CHECK(bce_logits == std::vector<double>{0, 1});  // sigmoid(x) − t
  auto ln = grad_of([](const Tensor& x) { return F::layer_norm(x, {4}) * tensor({1.0, 2.0, 3.0, 4.0}, DType::f64); },
                    {5.0, 5.0, 5.0, 5.0});  // zero variance: finite through eps
  for (double v : ln) CHECK(std::isfinite(v));
}
