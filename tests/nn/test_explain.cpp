// Attributions (nn/explain.hpp): saliency, gradient × input, SmoothGrad, Integrated Gradients.
// Known values on models whose gradient is known, central differences in float64, IG's completeness
// on the seed MLP and the small CNN, the Adebayo et al. (2018) model-randomisation sanity check,
// bad input, and the model and graph left untouched.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <vector>

#include "autograd/autograd.hpp"
#include "nn/explain.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;

namespace {

/// Spearman's rank correlation (average ranks for ties).
double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  auto ranks = [](const std::vector<double>& v) {
    std::vector<size_t> order(v.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return v[i] < v[j]; });
    std::vector<double> r(v.size());
    for (size_t i = 0; i < order.size();) {
      size_t j = i;
      while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
      for (size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * static_cast<double>(i + j);
      i = j + 1;
    }
    return r;
  };
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

/// Mean over samples of the rank correlation of |a| and |b| (or of a and b), [N, ...] maps.
double mean_rank_correlation(const Tensor& a, const Tensor& b, bool absolute = true) {
  const int64_t n = a.size(0), per = a.numel() / n;
  const std::vector<double> va = (absolute ? abs(a) : a).to_vector(), vb = (absolute ? abs(b) : b).to_vector();
  double total = 0;
  for (int64_t i = 0; i < n; ++i)
    total += spearman({va.begin() + i * per, va.begin() + (i + 1) * per},
                      {vb.begin() + i * per, vb.begin() + (i + 1) * per});
  return total / static_cast<double>(n);
}

/// Synthetic 28×28 "strokes": class c < 5 is a horizontal bar at row 4 + 5c, class c ≥ 5 a vertical
/// bar at column 4 + 5(c − 5), each 2 px wide and 16 long, shifted by up to ±2 px along its length,
/// over a faint uniform background. [n, 1, 28, 28] and int64 labels.
std::pair<Tensor, Tensor> strokes(int64_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<double> pixels(static_cast<size_t>(n * 28 * 28));
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % 10, shift = static_cast<int64_t>(gen.below(5)) - 2;
    double* img = pixels.data() + i * 28 * 28;
    for (int64_t p = 0; p < 28 * 28; ++p) img[p] = 0.15 * gen.uniform();
    for (int64_t along = 6 + shift; along < 22 + shift; ++along)
      for (int64_t across = 4 + 5 * (c % 5); across < 6 + 5 * (c % 5); ++across)
        img[c < 5 ? across * 28 + along : along * 28 + across] = 0.8 + 0.2 * gen.uniform();
    labels.push_back(c);
  }
  return {tensor(pixels, {n, 1, 28, 28}), index_tensor(labels)};
}

/// The seed MLP's layers (Flatten → Dense(128, relu) → Dense(10)) from `gen`; logits out.
std::shared_ptr<nn::Sequential> seed_mlp(Generator& gen) {
  return std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128, gen), nn::ReLU(),
                                          nn::Linear(128, 10, gen));
}

/// examples/mnist_cnn.cpp's CNN from `gen`; logits out.
std::shared_ptr<nn::Sequential> small_cnn(Generator& gen) {
  return std::make_shared<nn::Sequential>(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1), gen), nn::ReLU(),
                                          nn::MaxPool2d(2), nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1), gen),
                                          nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(64 * 7 * 7, 128, gen),
                                          nn::ReLU(), nn::Linear(128, 10, gen));
}

/// Trains `model` (logits) on `x`, `y` with Adam; returns the training accuracy after.
double train(nn::UnaryModule& model, const Tensor& x, const Tensor& y, int64_t epochs, int64_t batch) {
  optim::Adam opt(model.parameters(), optim::AdamOptions(3e-3));
  const int64_t n = x.size(0);
  for (int64_t e = 0; e < epochs; ++e)
    for (int64_t b = 0; b < n; b += batch) {
      opt.zero_grad();
      nn::functional::cross_entropy(model(slice(x, 0, b, std::min(n, b + batch))),
                                    slice(y, 0, b, std::min(n, b + batch)))
          .backward();
      opt.step();
    }
  NoGradGuard off;
  const std::vector<double> pred = argmax(model(x), 1).to_vector(), truth = y.to_vector();
  int64_t right = 0;
  for (size_t i = 0; i < pred.size(); ++i) right += pred[i] == truth[i];
  return static_cast<double>(right) / static_cast<double>(n);
}

/// The trained seed MLP with a softmax on top (the Keras seed model's Dense(10, softmax)), shared
/// by the tests below: trained once, on 600 synthetic strokes.
struct TrainedMlp {
  std::shared_ptr<nn::Sequential> logits;
  std::shared_ptr<nn::Sequential> probs;
  double accuracy;
};
TrainedMlp& trained_mlp() {
  static TrainedMlp t = [] {
    Generator gen(11);
    auto logits = seed_mlp(gen);
    auto [x, y] = strokes(600, 1);
    const double acc = train(*logits, x, y, 4, 50);
    return TrainedMlp{logits, std::make_shared<nn::Sequential>(logits, nn::Softmax()), acc};
  }();
  return t;
}

}  // namespace

TEST_CASE("spearman: 1 for a monotone map, -1 reversed, ties averaged") {
  CHECK(spearman({1, 2, 3, 4}, {10, 20, 35, 100}) == doctest::Approx(1.0));
  CHECK(spearman({1, 2, 3, 4}, {4, 3, 2, 1}) == doctest::Approx(-1.0));
  CHECK(spearman({1, 1, 2, 3}, {0, 0, 5, 6}) == doctest::Approx(1.0));
  CHECK(spearman({1, 2, 3, 4, 5}, {2, 1, 4, 3, 5}) == doctest::Approx(0.8));
}

TEST_CASE("saliency, gradient and gradient × input equal the hand-computed gradient of a linear model") {
  Generator gen(5);
  nn::Linear fc(5, 3, gen);
  Tensor x = randn({4, 5}, DType::f32, gen);
  const std::vector<double> w = fc.weight.to_vector(), xv = x.to_vector();  // W [3, 5]
  Tensor g = nn::gradient(fc, x, nn::Target::class_index(2));
  Tensor s = nn::saliency(fc, x, nn::Target::class_index(2));
  Tensor gi = nn::gradient_x_input(fc, x, nn::Target::class_index(2));
  REQUIRE(g.shape() == x.shape());
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      const size_t k = static_cast<size_t>(i * 5 + j);
      CHECK(g.to_vector()[k] == doctest::Approx(w[static_cast<size_t>(2 * 5 + j)]));
      CHECK(s.to_vector()[k] == doctest::Approx(std::abs(w[static_cast<size_t>(2 * 5 + j)])));
      CHECK(gi.to_vector()[k] == doctest::Approx(xv[k] * w[static_cast<size_t>(2 * 5 + j)]));
    }
  // One class per sample: row i gets W[labels[i]].
  Tensor labels = index_tensor({0, 2, 1, 0});
  Tensor gl = nn::gradient(fc, x, nn::Target::class_indices(labels), nn::GradientOptions().batch_size(3));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 5; ++j)
      CHECK(gl.to_vector()[static_cast<size_t>(i * 5 + j)] ==
            doctest::Approx(w[static_cast<size_t>(labels.to_vector()[static_cast<size_t>(i)] * 5 + j)]));
}

TEST_CASE("the attribution gradient matches central differences in float64") {
  Generator gen(9);
  nn::Sequential model(nn::Linear(4, 6, gen), nn::Tanh(), nn::Linear(6, 3, gen), nn::Softmax());
  model.to(DType::f64);
  Tensor x = randn({2, 4}, DType::f64, gen);
  const int64_t cls[] = {1, 2};
  Tensor g = nn::gradient(model, x, nn::Target::class_indices(index_tensor({cls[0], cls[1]})));
  const double eps = 1e-6;
  std::vector<double> xv = x.to_vector();
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 4; ++j) {
      auto f = [&](double dx) {
        std::vector<double> v = xv;
        v[static_cast<size_t>(i * 4 + j)] += dx;
        NoGradGuard off;
        return model(tensor(v, {2, 4}, DType::f64)).at({i, cls[i]});
      };
      const double numeric = (f(eps) - f(-eps)) / (2 * eps);
      CHECK(g.at({i, j}) == doctest::Approx(numeric).epsilon(1e-6));
    }
  // A wrong target would fail this comparison: the check can see a wrong gradient.
  Tensor wrong = nn::gradient(model, x, nn::Target::class_index(0));
  CHECK(wrong.at({0, 0}) != doctest::Approx(g.at({0, 0})).epsilon(1e-6));
}

TEST_CASE("Integrated Gradients is exact on a quadratic (the midpoint rule integrates a linear path gradient)") {
  // F(x) = Σ_j w_j x_j², baseline 0: IG_j = x_j · ∫ 2 w_j α x_j dα = w_j x_j².
  Tensor w = tensor({0.5, -1.0, 2.0}, DType::f64);
  nn::Forward f = [&](const Tensor& x) { return sum(mul(mul(x, x), w), {1}); };
  Tensor x = tensor({1.0, 2.0, -3.0, 0.5, 0.0, 1.5}, {2, 3}, DType::f64);
  auto ig = nn::integrated_gradients(f, x, nn::Target::scalar_output(), nn::IntegratedGradientsOptions().steps(3));
  const std::vector<double> a = ig.attributions.to_vector(), xv = x.to_vector(), wv = w.to_vector();
  for (size_t k = 0; k < a.size(); ++k) CHECK(a[k] == doctest::Approx(wv[k % 3] * xv[k] * xv[k]));
  REQUIRE(ig.completeness.size() == 2);
  CHECK(ig.completeness[0].output_difference == doctest::Approx(0.5 - 4.0 + 18.0));
  CHECK(ig.completeness[1].attribution_sum == doctest::Approx(0.5 * 0.25 + 2.0 * 2.25));
  CHECK(*ig.max_relative_error() < 1e-12);
  CHECK(ig.output.to_vector()[0] == doctest::Approx(14.5));
  CHECK(ig.baseline_output.to_vector()[0] == 0.0);
}

TEST_CASE("IG completeness ≤ 1 % at 64 steps on the seed MLP (softmax output, trained)") {
  TrainedMlp& m = trained_mlp();
  REQUIRE(m.accuracy > 0.9);
  auto [x, y] = strokes(10, 77);  // one of each class, unseen
  auto ig =
      nn::integrated_gradients(*m.probs, x, nn::Target::class_indices(y), nn::IntegratedGradientsOptions().steps(64));
  REQUIRE(ig.completeness.size() == 10);
  for (const auto& c : ig.completeness) {
    REQUIRE(c.relative_error.has_value());
    CHECK(std::abs(c.output_difference) > 0.1);  // the explained probability moves along the path
    CHECK(*c.relative_error <= 0.01);
  }
  // Fewer steps are measurably worse: the report is computed, not assumed.
  auto coarse =
      nn::integrated_gradients(*m.probs, x, nn::Target::class_indices(y), nn::IntegratedGradientsOptions().steps(2));
  CHECK(*coarse.max_relative_error() > *ig.max_relative_error());
}

TEST_CASE("IG completeness ≤ 1 % at 64 steps on the small CNN (briefly trained, logits)") {
  // Random weights move the logits by ~0.001 between baseline and input, where the relative error
  // measures rounding, not the integral: a few steps of training give outputs that mean something.
  Generator gen(21);
  auto cnn = small_cnn(gen);
  auto [train_x, train_y] = strokes(200, 3);
  const double accuracy = train(*cnn, train_x, train_y, 1, 20);
  REQUIRE(accuracy > 0.9);
  auto [x, y] = strokes(4, 5);
  auto ig = nn::integrated_gradients(*cnn, x, nn::Target::class_indices(y), nn::IntegratedGradientsOptions().steps(64));
  for (const auto& c : ig.completeness) {
    REQUIRE(c.relative_error.has_value());
    CHECK(std::abs(c.output_difference) > 0.5);
    CHECK(*c.relative_error <= 0.01);
  }
}

TEST_CASE("IG's result does not depend on how the path is cut into batches") {
  Generator gen(4);
  nn::Sequential model(nn::Linear(6, 8, gen), nn::ReLU(), nn::Linear(8, 4, gen));
  Tensor x = randn({3, 6}, DType::f32, gen);
  auto whole =
      nn::integrated_gradients(model, x, nn::Target::class_index(1), nn::IntegratedGradientsOptions().steps(16));
  auto cut = nn::integrated_gradients(model, x, nn::Target::class_index(1),
                                      nn::IntegratedGradientsOptions().steps(16).batch_size(7));
  const std::vector<double> a = whole.attributions.to_vector(), b = cut.attributions.to_vector();
  for (size_t k = 0; k < a.size(); ++k) CHECK(a[k] == doctest::Approx(b[k]).epsilon(1e-5));
}

TEST_CASE("SmoothGrad: zero noise is the saliency map, noise is seeded, signed mode averages ∂y/∂x") {
  Generator gen(8);
  nn::Sequential model(nn::Linear(5, 7, gen), nn::Tanh(), nn::Linear(7, 3, gen));
  Tensor x = randn({2, 5}, DType::f32, gen);
  auto target = nn::Target::class_index(0);
  Tensor s = nn::saliency(model, x, target);
  Tensor sg0 = nn::smooth_grad(model, x, target, nn::SmoothGradOptions().samples(4).noise_level(0));
  for (size_t k = 0; k < 10; ++k) CHECK(sg0.to_vector()[k] == doctest::Approx(s.to_vector()[k]));
  Generator a(3), b(3), c(4);
  auto opts = nn::SmoothGradOptions().samples(8).noise_level(0.2).batch_size(5);
  Tensor sa = nn::smooth_grad(model, x, target, opts, a), sb = nn::smooth_grad(model, x, target, opts, b);
  Tensor sc = nn::smooth_grad(model, x, target, opts, c);
  CHECK(sa.to_vector() == sb.to_vector());
  CHECK(sa.to_vector() != sc.to_vector());
  CHECK(sa.to_vector() != s.to_vector());
  // Signed: a linear model's gradient is the same at every noisy point.
  nn::Linear fc(5, 3, gen);
  Tensor signed_sg = nn::smooth_grad(fc, x, target, nn::SmoothGradOptions().samples(6).absolute(false), a);
  Tensor g = nn::gradient(fc, x, target);
  for (size_t k = 0; k < 10; ++k) CHECK(signed_sg.to_vector()[k] == doctest::Approx(g.to_vector()[k]));
}

TEST_CASE("a custom target: a chosen token's log-probability in a sequence model") {
  Generator gen(12);
  nn::Linear head(4, 6, gen);  // [B, T, 4] → logits [B, T, 6]
  Tensor x = randn({2, 3, 4}, DType::f32, gen);
  Tensor tokens = index_tensor({5, 1});  // the token explained for each sample, at the last position
  auto target = nn::Target::custom(
      [&](const Tensor& logits, const Tensor& sample) {
        Tensor last = reshape(slice(log_softmax(logits, -1), 1, 2, 3), {logits.size(0), 6});
        Tensor tok = index_select(tokens, 0, sample);
        return reshape(gather(last, 1, reshape(tok, {tok.numel(), 1})), {tok.numel()});
      },
      "last token's log-probability");
  Tensor g = nn::gradient(head, x, target);
  // By hand: grad() of the same scores.
  Tensor xi = x.detach().requires_grad_();
  Tensor lp = log_softmax(head(xi), -1);
  Tensor score = add(slice(slice(slice(lp, 0, 0, 1), 1, 2, 3), 2, 5, 6).sum(),
                     slice(slice(slice(lp, 0, 1, 2), 1, 2, 3), 2, 1, 2).sum());
  Tensor expected = grad({score}, {xi})[0];
  const std::vector<double> a = g.to_vector(), b = expected.to_vector();
  for (size_t k = 0; k < a.size(); ++k) CHECK(a[k] == doctest::Approx(b[k]));
  // A per-position head: the positions before the explained one get no attribution.
  CHECK(g.at({0, 0, 0}) == 0.0);
}

TEST_CASE("Adebayo et al. sanity check: re-initialised weights decorrelate saliency and IG maps") {
  TrainedMlp& m = trained_mlp();
  REQUIRE(m.accuracy > 0.9);  // the model learned the strokes
  auto [x, y] = strokes(10, 99);
  auto target = nn::Target::class_indices(y);
  const auto ig_options = nn::IntegratedGradientsOptions().steps(32);
  Tensor sal = nn::saliency(*m.probs, x, target);
  Tensor ig = nn::integrated_gradients(*m.probs, x, target, ig_options).attributions;

  // Same architecture, every weight re-drawn (the paper's full cascading randomisation).
  nn::Sequential random_model(m.logits->operator[](0), m.logits->operator[](1), m.logits->operator[](2),
                              m.logits->operator[](3), nn::Softmax());
  nn::NamedTensors saved;
  for (const auto& [name, t] : m.logits->state_dict()) saved.emplace_back(name, t.detach().clone());
  Generator regen(12345);
  for (size_t i = 0; i < m.logits->size(); ++i)
    if (auto fc = std::dynamic_pointer_cast<nn::Linear>((*m.logits)[i])) fc->reset_parameters(regen);
  Tensor sal_random = nn::saliency(random_model, x, target);
  Tensor ig_random = nn::integrated_gradients(random_model, x, target, ig_options).attributions;
  m.logits->load_state_dict(saved);  // the trained weights back for the other tests

  // Adebayo et al. rank the absolute maps (and, for signed methods, the signed ones too). |IG| keeps
  // some of the input's own structure (|x − x′| is a factor of every map): 0.46 here, the closest to 0.5.
  const double r_sal = mean_rank_correlation(sal, sal_random), r_ig = mean_rank_correlation(ig, ig_random);
  const double r_ig_signed = mean_rank_correlation(ig, ig_random, false);
  MESSAGE("rank correlation trained vs re-initialised: saliency " << r_sal << ", |IG| " << r_ig << ", IG "
                                                                  << r_ig_signed);
  CHECK(r_sal < 0.5);
  CHECK(r_ig < 0.5);
  CHECK(r_ig_signed < 0.5);
  // The measure can be high: the trained maps against themselves recomputed.
  CHECK(mean_rank_correlation(sal, nn::saliency(*m.probs, x, target)) == doctest::Approx(1.0));
}

TEST_CASE("attributions leave the model, its gradients and the caller's graph untouched") {
  Generator gen(2);
  nn::Sequential model(nn::Linear(4, 5, gen), nn::Dropout(0.5), nn::Linear(5, 3, gen));
  model.train();
  model[1]->eval();  // a mixed state: each module's own flag must come back
  Tensor marker = full({5, 4}, 7.0);
  model[0]->parameters()[0].set_grad(marker);
  const std::vector<double> weights_before = model.parameters()[0].to_vector();
  Tensor x0 = randn({2, 4}, DType::f32, gen).requires_grad_();
  Tensor x = mul(x0, 2.0);  // x is part of the caller's graph
  nn::smooth_grad(model, x, nn::Target::class_index(1), nn::SmoothGradOptions().samples(3));
  nn::integrated_gradients(model, x, nn::Target::class_index(1), nn::IntegratedGradientsOptions().steps(4));
  nn::saliency(model, x, nn::Target::class_index(1));
  CHECK(model.is_training());
  CHECK_FALSE(model[1]->is_training());
  CHECK(model[2]->is_training());
  CHECK(model.parameters()[0].grad().is_same(marker));  // the very tensor set before
  CHECK(marker.to_vector() == std::vector<double>(20, 7.0));
  for (size_t i = 1; i < model.parameters().size(); ++i) CHECK_FALSE(model.parameters()[i].grad().defined());
  CHECK(model.parameters()[0].to_vector() == weights_before);
  CHECK_FALSE(x0.grad().defined());
  sum(x).backward();  // the caller's graph still works
  CHECK(x0.grad().to_vector() == std::vector<double>(8, 2.0));
}

TEST_CASE("bad input: each a clear error naming the argument") {
  Generator gen(1);
  nn::Linear fc(3, 4, gen);
  Tensor x = randn({2, 3}, DType::f32, gen);
  auto cls = nn::Target::class_index(1);
  CHECK_THROWS_WITH_AS(nn::integrated_gradients(fc, x, cls, nn::IntegratedGradientsOptions().baseline(zeros({3}))),
                       doctest::Contains("baseline has shape [3] (float32) but x has [2, 3] (float32)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::integrated_gradients(fc, x, cls, nn::IntegratedGradientsOptions().steps(0)),
                       doctest::Contains("steps must be ≥ 1, got 0"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::saliency(fc, x, nn::Target::class_index(4)),
                       doctest::Contains("target class 4 is out of range for an output of shape [2, 4]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::saliency(fc, x, nn::Target::class_index(-1)),
                       doctest::Contains("target class -1 is negative"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::saliency(fc, x, nn::Target::class_indices(index_tensor({0, 9}))),
                       doctest::Contains("target label 9 (sample 1) is out of range for an output of shape [2, 4]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::saliency(fc, x, nn::Target::class_indices(index_tensor({0, 1, 2}))),
                       doctest::Contains("target labels must be int64 [2]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::saliency(fc, x, nn::Target::scalar_output()),
                       doctest::Contains("scalar_output needs an output of shape [rows] or [rows, 1], got [2, 4]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::smooth_grad(fc, x, cls, nn::SmoothGradOptions().samples(0)),
                       doctest::Contains("samples must be ≥ 1"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::smooth_grad(fc, x, cls, nn::SmoothGradOptions().noise_level(-0.1)),
                       doctest::Contains("noise_level must be finite and ≥ 0"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::saliency(fc, x, cls, nn::GradientOptions().batch_size(-1)),
                       doctest::Contains("batch_size must be ≥ 0"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::saliency(fc, index_tensor({1, 2, 3}, {1, 3}), cls), doctest::Contains("x is int64"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::saliency(fc, zeros({0, 3}), cls), doctest::Contains("has no samples"),
                       std::invalid_argument);
  nn::Forward drops_rows = [&](const Tensor& in) { return fc(sum(in, {0}, true)); };
  CHECK_THROWS_WITH_AS(nn::saliency(drops_rows, x, cls), doctest::Contains("its first dimension must be 2"),
                       std::invalid_argument);
  auto bad_selector = nn::Target::custom([](const Tensor& out, const Tensor&) { return out; }, "whole output");
  CHECK_THROWS_WITH_AS(nn::saliency(fc, x, bad_selector),
                       doctest::Contains("the target 'whole output' returned float32 [2, 4]"), std::invalid_argument);
  CHECK_FALSE(fc.weight.grad().defined());
}

TEST_CASE("a score that does not depend on the input: zero attributions, completeness undefined (not NaN)") {
  Generator gen(6);
  nn::Linear fc(3, 2, gen);
  Tensor bias_only_in = randn({1, 3}, DType::f32, gen);
  // On the parameters only (a graph that requires grad but never reaches the input), on nothing
  // recorded at all, or on the input times zero.
  nn::Forward parameters_only = [&](const Tensor& in) {
    return expand(reshape(sum(fc(bias_only_in)), {1}), {in.size(0)});
  };
  nn::Forward detached = [&](const Tensor& in) { return zeros({in.size(0)}); };
  nn::Forward times_zero = [&](const Tensor& in) { return sum(mul(fc(in), 0.0), {1}); };
  Tensor x = randn({2, 3}, DType::f32, gen);
  for (const auto& f : {parameters_only, detached, times_zero}) {
    Tensor s = nn::saliency(f, x, nn::Target::scalar_output());
    CHECK(s.to_vector() == std::vector<double>(6, 0.0));
    auto ig = nn::integrated_gradients(f, x, nn::Target::scalar_output());
    CHECK(ig.attributions.to_vector() == std::vector<double>(6, 0.0));
    for (const auto& c : ig.completeness) {
      CHECK(c.output_difference == 0.0);
      CHECK(c.attribution_sum == 0.0);
      CHECK_FALSE(c.relative_error.has_value());
    }
    CHECK_FALSE(ig.max_relative_error().has_value());
  }
}
