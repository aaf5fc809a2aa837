// cross_entropy and nll_loss with PyTorch's options (class weights, ignore_index, label smoothing)
// and layouts ([N, C] and [N, C, d1, ...]) against values PyTorch 1.13 computed
// (scripts/make_loss_reference.py wrote loss_reference.inc), the fused backward against the
// recorded one, and the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"
#include "nn/reference_util.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;
using F::CrossEntropyOptions;
using F::Reduction;
using test::check_close;
using test::reference_input;

namespace {
#include "nn/loss_reference.inc"

const Reduction kReductions[] = {Reduction::none, Reduction::mean, Reduction::sum};
const char* kNames[] = {"none", "mean", "sum"};
}  // namespace

TEST_CASE("cross_entropy [N, C] with weight, ignore_index and label smoothing matches PyTorch, each reduction") {
  Tensor x = reference_input({5, 4}, 0.3);
  Tensor t = index_tensor({1, 3, -100, 0, 2}), t_plain = index_tensor({1, 3, 2, 0, 2});
  Tensor w = tensor({0.5, 2.0, 1.0, 1.5}, DType::f64);
  const std::vector<double>* want[3][4] = {
      {&ce2_plain_none, &ce2_weight_none, &ce2_smooth_none, &ce2_all_none},
      {&ce2_plain_mean, &ce2_weight_mean, &ce2_smooth_mean, &ce2_all_mean},
      {&ce2_plain_sum, &ce2_weight_sum, &ce2_smooth_sum, &ce2_all_sum}};
  for (int ri = 0; ri < 3; ++ri) {
    CAPTURE(kNames[ri]);
    const Reduction r = kReductions[ri];
    check_close(F::cross_entropy(x, t_plain, r).to_vector(), *want[ri][0]);
    check_close(F::cross_entropy(x, t, CrossEntropyOptions().reduction(r).weight(w)).to_vector(), *want[ri][1]);
    check_close(F::cross_entropy(x, t, CrossEntropyOptions().reduction(r).label_smoothing(0.1)).to_vector(), *want[ri][2]);
    check_close(F::cross_entropy(x, t, CrossEntropyOptions().reduction(r).weight(w).label_smoothing(0.1)).to_vector(),
                *want[ri][3]);
  }
  CHECK(F::cross_entropy(x, t, Reduction::none).shape() == Shape{5});
}

TEST_CASE("cross_entropy's gradient with every option matches PyTorch, fused and recorded (create_graph)") {
  Tensor x = reference_input({5, 4}, 0.3).requires_grad_();
  Tensor t = index_tensor({1, 3, -100, 0, 2});
  Tensor w = tensor({0.5, 2.0, 1.0, 1.5}, DType::f64), c = tensor({1.0, -2.0, 0.5, 3.0, 1.5}, DType::f64);
  auto opts = CrossEntropyOptions().weight(w).label_smoothing(0.1);
  for (bool create_graph : {false, true}) {
    CAPTURE(create_graph);
    auto none = [&] { return sum(F::cross_entropy(x, t, CrossEntropyOptions(opts).reduction(Reduction::none)) * c); };
    check_close(grad({none()}, {x}, {}, false, create_graph)[0].to_vector(), ce2_all_none_grad);
    check_close(grad({F::cross_entropy(x, t, opts)}, {x}, {}, false, create_graph)[0].to_vector(), ce2_all_mean_grad);
  }
}

TEST_CASE("cross_entropy over [N, C, d1, d2] (class dim 1) matches PyTorch, values and gradient") {
  Tensor x = reference_input({2, 3, 2, 2}, 0.7).requires_grad_();
  Tensor t = index_tensor({0, 2, 1, 2, 1, 0, 0, 2}, {2, 2, 2});
  auto opts = CrossEntropyOptions().weight(tensor({1.5, 0.25, 0.75}, DType::f64)).ignore_index(1).label_smoothing(0.2);
  const std::vector<double>* want[] = {&ce4_none, &ce4_mean, &ce4_sum};
  for (int ri = 0; ri < 3; ++ri) {
    CAPTURE(kNames[ri]);
    check_close(F::cross_entropy(x, t, CrossEntropyOptions(opts).reduction(kReductions[ri])).to_vector(), *want[ri]);
  }
  CHECK(F::cross_entropy(x, t, Reduction::none).shape() == Shape{2, 2, 2});
  check_close(F::cross_entropy(x, t).to_vector(), ce4_plain_mean);
  for (bool create_graph : {false, true}) {
    CAPTURE(create_graph);
    check_close(grad({F::cross_entropy(x, t, opts)}, {x}, {}, false, create_graph)[0].to_vector(), ce4_mean_grad);
  }
}

TEST_CASE("a language model's [B, T, V] logits: rows, or [B, V, T], give the same loss") {
  Tensor logits = reference_input({2, 3, 5}, 0.1);  // [B, T, V]
  Tensor targets = index_tensor({4, 0, 2, 1, 1, 3}, {2, 3});
  Tensor rows = F::cross_entropy(reshape(logits, {6, 5}), reshape(targets, {6}));
  Tensor layout = F::cross_entropy(transpose(logits, 1, 2), targets);
  CHECK(rows.item() == doctest::Approx(layout.item()).epsilon(1e-14));
  // the same mean written out: logsumexp − x[t] per token
  Tensor lse = logsumexp(logits, {2});
  double total = 0;
  const auto tv = targets.to_vector();
  for (int64_t i = 0; i < 6; ++i)
    total += lse.to_vector()[i] - logits.to_vector()[i * 5 + static_cast<int64_t>(tv[i])];
  CHECK(rows.item() == doctest::Approx(total / 6).epsilon(1e-14));
}

TEST_CASE("cross_entropy float32 with options agrees with float64") {
  Tensor x = reference_input({2, 3, 2, 2}, 0.7);
  Tensor t = index_tensor({0, 2, 1, 2, 1, 0, 0, 2}, {2, 2, 2});
  auto opts = [](DType d) {
    return CrossEntropyOptions().weight(tensor({1.5, 0.25, 0.75}, d)).ignore_index(1).label_smoothing(0.2);
  };
  Tensor x32 = x.to(DType::f32).requires_grad_();
  Tensor l32 = F::cross_entropy(x32, t, opts(DType::f32));
  l32.backward();
  CHECK(l32.item() == doctest::Approx(ce4_mean[0]).epsilon(1e-6));
  check_close(x32.grad().to_vector(), ce4_mean_grad, 1e-6);
}

TEST_CASE("every target ignored: mean is NaN (as PyTorch), sum 0, gradient 0") {
  Tensor x = reference_input({5, 4}, 0.3).requires_grad_();
  Tensor t = index_tensor({-100, -100, -100, -100, -100});
  for (double eps : {0.0, 0.1}) {
    CAPTURE(eps);
    Tensor loss = F::cross_entropy(x, t, CrossEntropyOptions().label_smoothing(eps));
    CHECK(std::isnan(loss.item()));
    for (bool create_graph : {false, true})
      for (double g : grad({loss}, {x}, {}, true, create_graph)[0].to_vector()) CHECK(g == 0);
    CHECK(F::cross_entropy(x, t, CrossEntropyOptions().label_smoothing(eps).reduction(Reduction::sum)).item() == 0);
  }
  Tensor nll = F::nll_loss(log_softmax(x, 1), t);
  CHECK(std::isnan(nll.item()));
  for (double g : grad({nll}, {x})[0].to_vector()) CHECK(g == 0);
}

TEST_CASE("nll_loss [N, C, d] with weight and ignore_index matches PyTorch, each reduction") {
  Tensor lp = log_softmax(reference_input({3, 4, 2}, 1.1), 1);
  Tensor t = index_tensor({1, 0, 3, 2, 0, 0}, {3, 2});
  auto opts = F::NllLossOptions().weight(tensor({1.0, 0.5, 2.0, 3.0}, DType::f64)).ignore_index(0);
  const std::vector<double>* want[] = {&nll3_none, &nll3_mean, &nll3_sum};
  for (int ri = 0; ri < 3; ++ri) {
    CAPTURE(kNames[ri]);
    check_close(F::nll_loss(lp, t, F::NllLossOptions(opts).reduction(kReductions[ri])).to_vector(), *want[ri]);
  }
  // nll_loss(log_softmax) is cross_entropy, options included
  Tensor x = reference_input({2, 3, 2, 2}, 0.7);
  Tensor t4 = index_tensor({0, 2, 1, 2, 1, 0, 0, 2}, {2, 2, 2});
  Tensor w = tensor({1.5, 0.25, 0.75}, DType::f64);
  CHECK(F::nll_loss(log_softmax(x, 1), t4, F::NllLossOptions().weight(w).ignore_index(2)).item() ==
        doctest::Approx(F::cross_entropy(x, t4, CrossEntropyOptions().weight(w).ignore_index(2)).item()).epsilon(1e-14));
}

TEST_CASE("cross_entropy and nll_loss errors name the op, the value and C") {
  Tensor x = zeros({3, 4}).requires_grad_();
  CHECK_THROWS_WITH_AS(F::cross_entropy(x, index_tensor({0, 4, -100})),
                       doctest::Contains("cross_entropy: target 4 at position 1 is outside [0, 4)"), ShapeError);
  CHECK_THROWS_WITH_AS(F::cross_entropy(x, index_tensor({0, -1, 1}), CrossEntropyOptions().ignore_index(-2)),
                       doctest::Contains("target -1 at position 1"), ShapeError);
  CHECK_NOTHROW(F::cross_entropy(x, index_tensor({0, -1, 1}), CrossEntropyOptions().ignore_index(-1)));
  CHECK_THROWS_WITH_AS(F::cross_entropy(zeros({2, 3, 4}), index_tensor({0, 1, 2, 0}, {2, 2})),
                       doctest::Contains("input [2, 3, 4] and targets [2, 2]"), ShapeError);
  CHECK_THROWS_WITH_AS(F::cross_entropy(x, index_tensor({0, 1, 2}), CrossEntropyOptions().label_smoothing(1.5)),
                       doctest::Contains("label_smoothing must be in [0, 1], got 1.5"), std::invalid_argument);
  CHECK_THROWS_AS(F::cross_entropy(x, index_tensor({0, 1, 2}), CrossEntropyOptions().label_smoothing(-0.1)),
                  std::invalid_argument);
  CHECK_THROWS_WITH_AS(F::cross_entropy(x, index_tensor({0, 1, 2}), CrossEntropyOptions().weight(ones({3}))),
                       doctest::Contains("weight has shape [3], expected [4]"), ShapeError);
  CHECK_THROWS_WITH_AS(F::cross_entropy(x, index_tensor({0, 1, 2}), CrossEntropyOptions().weight(ones({4}, DType::f64))),
                       doctest::Contains("weight is float64, the input is float32"), DTypeError);
  CHECK_THROWS_WITH_AS(F::nll_loss(zeros({2, 3, 2}), index_tensor({0, 1, 3, 0}, {2, 2})),
                       doctest::Contains("nll_loss: target 3 at position 2 is outside [0, 3)"), ShapeError);
}

TEST_CASE("the plain [N, C] path keeps its exact values (the MNIST examples' hot path)") {
  // options with their defaults are the Reduction overload, bit for bit, in float32
  Tensor x = reference_input({7, 10}, 0.4, DType::f32).requires_grad_();
  Tensor t = index_tensor({3, 9, 0, 1, 1, 5, 7});
  for (Reduction r : kReductions) {
    Tensor a = F::cross_entropy(x, t, r), b = F::cross_entropy(x, t, CrossEntropyOptions().reduction(r));
    CHECK(a.to_vector() == b.to_vector());
    Tensor ga = grad({sum(a)}, {x})[0], gb = grad({sum(b)}, {x})[0];
    CHECK(ga.to_vector() == gb.to_vector());
  }
  // (softmax − onehot)/N at one element, computed here
  Tensor g = grad({F::cross_entropy(x, t)}, {x})[0];
  auto p = softmax(x, 1).to_vector();
  CHECK(g.to_vector()[3] == doctest::Approx((p[3] - 1) / 7).epsilon(1e-6));
  CHECK(g.to_vector()[4] == doctest::Approx(p[4] / 7).epsilon(1e-6));
}
