// Losses: known values, stability at extreme logits, reductions, errors, and gradcheck of every
// registered nn op.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;
using F::Reduction;

TEST_CASE("cross_entropy: known values and the nll(log_softmax) identity") {
  Tensor logits = tensor({1, 2, 3, 0, 0, 0}, {2, 3}), t = index_tensor({2, 1});
  // row 0: logsumexp(1,2,3) − 3 = 0.40760596; row 1: log 3
  auto none = F::cross_entropy(logits, t, Reduction::none).to_vector();
  CHECK(none[0] == doctest::Approx(0.40760596));
  CHECK(none[1] == doctest::Approx(std::log(3.0)));
  CHECK(F::cross_entropy(logits, t).item() == doctest::Approx((0.40760596 + std::log(3.0)) / 2));
  CHECK(F::cross_entropy(logits, t, Reduction::sum).item() == doctest::Approx(0.40760596 + std::log(3.0)));
  CHECK(F::nll_loss(log_softmax(logits, 1), t).item() == doctest::Approx(F::cross_entropy(logits, t).item()));
  Tensor x = logits.detach().requires_grad_();
  F::cross_entropy(x, t).backward();
  auto g = x.grad().to_vector();  // (softmax − onehot)/N
  CHECK(g[2] == doctest::Approx((std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 1) / 2));
  CHECK(g[4] == doctest::Approx((1.0 / 3 - 1) / 2));
}

TEST_CASE("losses stay finite at logits of ±1e4") {
  Tensor x = tensor({1e4, -1e4, 0, -1e4, 1e4, 0}, {2, 3}).requires_grad_();
  Tensor loss = F::cross_entropy(x, index_tensor({1, 1}));
  loss.backward();
  CHECK(loss.item() == doctest::Approx(1e4));  // row 0: 1e4 − (−1e4) = 2e4, row 1: 0 → mean 1e4
  for (double v : x.grad().to_vector()) CHECK(std::isfinite(v));
  Tensor z = tensor({1e4, -1e4}).requires_grad_();
  Tensor bce = F::binary_cross_entropy_with_logits(z, tensor({0.0, 0.0}), Reduction::sum);
  bce.backward();
  CHECK(bce.item() == doctest::Approx(1e4));
  CHECK(z.grad().to_vector() == std::vector<double>{1, 0});
}

TEST_CASE("regression and binary losses: known values") {
  Tensor p = tensor({1, 2, 3, 4}, {2, 2}), y = tensor({1, 0, 5, 4}, {2, 2});
  CHECK(F::mse_loss(p, y).item() == doctest::Approx(2.0));               // (0+4+4+0)/4
  CHECK(F::mse_loss(p, y, Reduction::sum).item() == doctest::Approx(8.0));
  CHECK(F::half_mse_loss(p, y).item() == doctest::Approx(2.0));          // 8/(2·2)
  CHECK(F::l1_loss(p, y).item() == doctest::Approx(1.0));
  CHECK(F::huber_loss(tensor({0.5, 3}), tensor({0.0, 0}), Reduction::none, 1.0).to_vector() ==
        std::vector<double>{0.125, 2.5});
  // delta 0.5: the linear branch is delta·(|d| − delta/2), continuous with d²/2 at |d| = delta
  CHECK(F::huber_loss(tensor({0.25, 3, -0.5}), tensor({0.0, 0, 0}), Reduction::none, 0.5).to_vector() ==
        std::vector<double>{0.03125, 1.375, 0.125});
  CHECK(F::binary_cross_entropy(tensor({0.8, 0.3}), tensor({1.0, 0})).item() ==
        doctest::Approx(-(std::log(0.8) + std::log(0.7)) / 2));
  CHECK(F::binary_cross_entropy(tensor({0.0}), tensor({1.0})).item() == doctest::Approx(100));  // log clamped
  CHECK(F::binary_cross_entropy_with_logits(tensor({0.0}), tensor({1.0})).item() == doctest::Approx(std::log(2.0)));
}

TEST_CASE("loss errors name the op and the shapes") {
  Tensor logits = zeros({3, 4});
  CHECK_THROWS_WITH_AS(F::cross_entropy(logits, index_tensor({0, 1})), doctest::Contains("targets [2]"), ShapeError);
  CHECK_THROWS_WITH_AS(F::cross_entropy(logits, index_tensor({0, 4, 1})), doctest::Contains("target 4 at position 1"),
                       ShapeError);
  CHECK_THROWS_AS(F::cross_entropy(logits, index_tensor({0, -1, 1})), ShapeError);
  CHECK_THROWS_WITH_AS(F::cross_entropy(logits, zeros({3})), doctest::Contains("int64"), DTypeError);
  CHECK_THROWS_AS(F::cross_entropy(zeros({3}), index_tensor({0, 1, 2})), ShapeError);
  CHECK_THROWS_AS(F::nll_loss(logits, index_tensor({9, 0, 0})), ShapeError);
  CHECK_THROWS_WITH_AS(F::mse_loss(zeros({3}), zeros({3, 1})), doctest::Contains("mse_loss: input [3]"), ShapeError);
  CHECK_THROWS_AS(F::l1_loss(zeros({3}), zeros({3}, DType::f64)), DTypeError);
  CHECK_THROWS_AS(F::huber_loss(zeros({3}), zeros({3}), Reduction::mean, 0), std::invalid_argument);
  CHECK_THROWS_WITH_AS(F::binary_cross_entropy(tensor({1.5}), tensor({1.0})), doctest::Contains("[0, 1]"),
                       std::invalid_argument);
}

TEST_CASE("cross_entropy's differentiable backward (create_graph) gives the fused backward's gradient") {
  // gradgradcheck only checks the recorded backward against itself: its first-order values need this
  Tensor logits =
      tensor({0.2, -1.0, 0.5, 1.5, 0.3, -0.2, 0.0, 2.0, -0.7, 0.4, 0.1, -0.3}, {4, 3}, DType::f64).requires_grad_();
  Tensor targets = index_tensor({2, 0, 1, 1});
  Tensor weights = tensor({1.0, 2.0, 3.0, -1.0}, DType::f64);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    CAPTURE(static_cast<int>(r));
    auto loss = [&] {
      Tensor l = F::cross_entropy(logits, targets, r);
      return r == Reduction::none ? sum(l * weights) : l;
    };
    std::vector<double> fused = grad({loss()}, {logits})[0].to_vector();
    std::vector<double> recorded = grad({loss()}, {logits}, {}, false, /*create_graph=*/true)[0].to_vector();
    REQUIRE(fused.size() == recorded.size());
    for (size_t i = 0; i < fused.size(); ++i) CHECK(recorded[i] == doctest::Approx(fused[i]).epsilon(1e-12));
  }
}

TEST_CASE("every registered nn op passes gradcheck and gradgradcheck") {
  nn::register_ops();
  nn::register_ops();  // idempotent
  int checked = 0;
  for (const OpInfo& op : op_registry()) {
    if (op.family != "nn") continue;
    for (auto& s : op.samples()) {
      auto r = gradcheck(op.fn, s.inputs, GradcheckOptions().set_atol(op.atol).set_rtol(op.rtol));
      CHECK_MESSAGE(r.ok, op.name, " (", s.description, "): ", r.message);
      if (op.check_gradgrad) {
        auto rr = gradgradcheck(op.fn, s.inputs, GradcheckOptions().set_atol(op.atol).set_rtol(op.rtol));
        CHECK_MESSAGE(rr.ok, op.name, " (", s.description, ") second order: ", rr.message);
      }
    }
    ++checked;
  }
  CHECK(checked >= 20);
}
