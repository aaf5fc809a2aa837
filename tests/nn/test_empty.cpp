// Zero-size inputs through every reduction, loss and layer: PyTorch's value where it has a
// finite one (Σ∅ = 0, an empty batch gives empty outputs and zero parameter gradients), a clear
// error otherwise (mean of nothing, max of nothing) — but the class losses' mean over no targets is
// NaN, as PyTorch's. Nothing reads out of bounds (ASan run).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <utility>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;

namespace {
/// f either returns or throws an exception whose message names tapegrad (a clear error).
bool clear_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return std::string(e.what()).find("tapegrad") != std::string::npos;
  }
  return false;
}
bool all_zero(const Tensor& t) {
  for (double v : t.to_vector())
    if (v != 0) return false;
  return true;
}
}  // namespace

TEST_CASE("empty reductions: sum is 0, the others are clear errors") {
  // sum(zeros({0, 5}), {0}) read out of bounds and returned garbage.
  Tensor e = zeros({0, 5}).requires_grad_();
  Tensor s = sum(e, {0});
  CHECK(s.shape() == Shape{5});
  CHECK(all_zero(s));
  CHECK(all_zero(sum(Tensor(zeros({3, 0, 4})), {1})));
  CHECK(sum(e).item() == 0);
  sum(s).backward();
  CHECK(e.grad().shape() == Shape{0, 5});
  CHECK(sum(zeros({5, 0}), {1}).shape() == Shape{5});
  CHECK(sum(zeros({0, 5}), {1}).shape() == Shape{0});
  CHECK(clear_error([&] { mean(e, {0}); }));
  CHECK(clear_error([&] { max(e, {0}); }));
  CHECK(clear_error([&] { min(e); }));
  CHECK(clear_error([&] { var(e, {0}); }));
  CHECK(clear_error([&] { logsumexp(e, {0}); }));
  CHECK(clear_error([&] { argmax(e, 0); }));
  CHECK(max(e, {1}).shape() == Shape{0});  // reducing a non-empty axis of an empty tensor is fine
  CHECK(softmax(e, 0).shape() == Shape{0, 5});
  CHECK(log_softmax(e, 1).shape() == Shape{0, 5});
}

TEST_CASE("an empty batch through Linear gives an empty output and zero weight and bias gradients") {
  // Through broadcasting's sum_to the garbage of an empty reduction reached bias.grad.
  nn::Linear layer(3, 2);
  Tensor y = layer(zeros({0, 3}));
  CHECK(y.shape() == Shape{0, 2});
  sum(y).backward();
  CHECK(all_zero(layer.weight.grad()));
  CHECK(all_zero(layer.bias.grad()));
  Tensor a = zeros({0, 3}).requires_grad_(), b = ones({3}).requires_grad_();
  sum(a + b).backward();
  CHECK(all_zero(b.grad()));
  Tensor k0 = zeros({2, 0}), w0 = zeros({0, 3});
  CHECK(all_zero(matmul(k0, w0)));  // an empty inner dimension sums nothing
}

TEST_CASE("every layer on a batch of zero samples: empty output or a clear error, never garbage") {
  manual_seed(3);
  nn::Conv2d conv(nn::Conv2dOptions(2, 4, 3).padding(1));
  Tensor img = zeros({0, 2, 5, 5});
  Tensor out = conv(img);
  CHECK(out.shape() == Shape{0, 4, 5, 5});
  sum(out).backward();
  CHECK(all_zero(conv.weight.grad()));
  CHECK(all_zero(conv.bias.grad()));
  CHECK(nn::F::max_pool2d(img, 2).shape() == Shape{0, 2, 2, 2});
  CHECK(nn::F::avg_pool2d(img, 2).shape() == Shape{0, 2, 2, 2});
  CHECK(nn::Flatten()(img).shape() == Shape{0, 50});
  CHECK(nn::F::dropout(zeros({0, 3}), 0.5, true).shape() == Shape{0, 3});
  nn::LayerNorm ln(Shape{3});
  CHECK(ln(zeros({0, 3})).shape() == Shape{0, 3});
  nn::Embedding emb(10, 4);
  CHECK(emb(index_tensor({}, Shape{0})).shape() == Shape{0, 4});
  nn::BatchNorm1d bn(3);
  bn.train();
  CHECK(clear_error([&] { bn(zeros({0, 3})); }));  // batch statistics of nothing
}

TEST_CASE("every loss on an empty batch: PyTorch's value for sum and none, for mean NaN or an error naming the loss") {
  Tensor logits = zeros({0, 4}).requires_grad_();
  Tensor targets = index_tensor({}, Shape{0});
  using nn::functional::Reduction;
  Tensor ce = nn::F::cross_entropy(logits, targets, Reduction::sum);
  CHECK(ce.item() == 0);
  ce.backward();
  CHECK(logits.grad().shape() == Shape{0, 4});
  CHECK(nn::F::cross_entropy(logits, targets, Reduction::none).shape() == Shape{0});
  // the class losses' mean over no targets is NaN, as PyTorch and as when every target is ignored
  Tensor ce_mean = nn::F::cross_entropy(logits, targets);
  CHECK(std::isnan(ce_mean.item()));
  logits.zero_grad();
  ce_mean.backward();
  CHECK(logits.grad().shape() == Shape{0, 4});
  const auto weighted = nn::F::CrossEntropyOptions().weight(ones({4}));
  CHECK(std::isnan(nn::F::cross_entropy(zeros({0, 4}), targets, weighted).item()));
  CHECK(std::isnan(nn::F::cross_entropy(zeros({2, 4, 0}), index_tensor({}, Shape{2, 0})).item()));  // no positions
  CHECK(std::isnan(nn::F::nll_loss(logits, targets).item()));
  CHECK(nn::F::nll_loss(logits, targets, Reduction::sum).item() == 0);
  // the elementwise losses' mean over nothing is an error naming the loss and the shape
  Tensor x = zeros({0, 3}), t = zeros({0, 3});
  using Loss = std::pair<const char*, Tensor (*)(const Tensor&, const Tensor&, Reduction)>;
  for (auto [name, loss] : {Loss{"mse_loss", nn::F::mse_loss}, Loss{"l1_loss", nn::F::l1_loss},
                            Loss{"binary_cross_entropy", nn::F::binary_cross_entropy},
                            Loss{"binary_cross_entropy_with_logits", nn::F::binary_cross_entropy_with_logits}}) {
    CAPTURE(name);
    CHECK(loss(x, t, Reduction::sum).item() == 0);
    CHECK(loss(x, t, Reduction::none).shape() == Shape{0, 3});
    const std::string expected = std::string("tapegrad::nn::") + name +
                                 ": empty input [0, 3]: the mean over zero elements is undefined";
    CHECK_THROWS_WITH_AS(loss(x, t, Reduction::mean), doctest::Contains(expected.c_str()), ShapeError);
  }
  CHECK(nn::F::huber_loss(x, t, Reduction::sum, 1.0).item() == 0);
  CHECK_THROWS_WITH_AS(nn::F::huber_loss(x, t, Reduction::mean, 1.0),
                       doctest::Contains("tapegrad::nn::huber_loss: empty input [0, 3]"), ShapeError);
  CHECK_THROWS_WITH_AS(nn::F::mse_loss(zeros({0}), zeros({0})),
                       doctest::Contains("tapegrad::nn::mse_loss: empty input [0]"), ShapeError);
  CHECK_THROWS_WITH_AS(nn::F::half_mse_loss(x, t),
                       "tapegrad::nn::half_mse_loss: empty input [0, 3]: the mean over zero samples is undefined",
                       ShapeError);
  CHECK(nn::F::half_mse_loss(zeros({2, 0}), zeros({2, 0})).item() == 0);  // two samples of no features
}

TEST_CASE("max, min and argmax propagate NaN along every axis, as PyTorch does") {
  // max(x, {0}) dropped a NaN that max(x, {1}) and the full reduction kept; argmax ignored NaN.
  const double nan = std::nan("");
  Tensor x = tensor({1, nan, 3, 4, 5, 6}, Shape{2, 3}, DType::f64);
  Tensor m0 = max(x, {0});
  CHECK(m0.at({0}) == 4);
  CHECK(std::isnan(m0.at({1})));
  CHECK(m0.at({2}) == 6);
  CHECK(std::isnan(max(x, {1}).at({0})));
  CHECK(std::isnan(min(x, {0}).at({1})));
  CHECK(std::isnan(max(x).item()));
  Tensor y = tensor({nan, 1, 3, 9, nan, 2}, Shape{2, 3}, DType::f64);  // NaN first in row 0, later in row 1
  CHECK(std::isnan(max(y, {0}).at({0})));
  CHECK(std::isnan(max(y, {0}).at({1})));
  CHECK(argmax(x, 1).to_vector() == std::vector<double>{1, 2});
  CHECK(argmax(x, 0).to_vector() == std::vector<double>{1, 0, 1});
  CHECK(argmax(tensor({2, nan, nan, 7}), 0).item() == 1);  // the first NaN
}
