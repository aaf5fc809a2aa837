// Metrics against confusion matrices computed by hand; token metrics and evaluate / fit on
// sequence targets against values computed by hand.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.hpp"
#include "datasets/datasets.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"
#include "train/fit.hpp"
#include "train/metrics.hpp"

using namespace tapegrad;
using tapegrad::train::ConfusionMatrix;

// targets   0 0 0 1 1 2 2 2 2 1 3
// predicted 0 1 0 1 2 2 2 0 2 1 2
// By hand (rows = true class):   TP  FP  FN   precision  recall  F1
//   0: [2 1 0 0]                  2   1   1   2/3        2/3     2/3
//   1: [0 2 1 0]                  2   1   1   2/3        2/3     2/3
//   2: [1 0 3 0]                  3   2   1   3/5        3/4     2·.6·.75/1.35 = 2/3
//   3: [0 0 1 0]                  0   0   1   0 (0/0)    0       0
// accuracy 7/11; macro P = (2/3+2/3+3/5+0)/4 = 29/60; macro R = (2/3+2/3+3/4+0)/4 = 25/48; macro F1 = 1/2
static const std::vector<int64_t> kTargets = {0, 0, 0, 1, 1, 2, 2, 2, 2, 1, 3};
static const std::vector<int64_t> kPredicted = {0, 1, 0, 1, 2, 2, 2, 0, 2, 1, 2};

static void check_hand_computed(const ConfusionMatrix& cm) {
  CHECK(cm.rows() == std::vector<std::vector<int64_t>>{{2, 1, 0, 0}, {0, 2, 1, 0}, {1, 0, 3, 0}, {0, 0, 1, 0}});
  CHECK(cm.total() == 11);
  CHECK(cm.accuracy() == doctest::Approx(7.0 / 11.0));
  CHECK(cm.precision(0) == doctest::Approx(2.0 / 3.0));
  CHECK(cm.precision(2) == doctest::Approx(3.0 / 5.0));
  CHECK(cm.precision(3) == 0.0);
  CHECK(cm.recall(2) == doctest::Approx(3.0 / 4.0));
  CHECK(cm.recall(3) == 0.0);
  CHECK(cm.f1(2) == doctest::Approx(2.0 / 3.0));
  CHECK(cm.f1(3) == 0.0);
  CHECK(cm.macro_precision() == doctest::Approx(29.0 / 60.0));
  CHECK(cm.macro_recall() == doctest::Approx(25.0 / 48.0));
  CHECK(cm.macro_f1() == doctest::Approx(0.5));
}

TEST_CASE("confusion matrix from class indices matches the hand computation") {
  ConfusionMatrix cm(4);
  cm.update(index_tensor(kPredicted), index_tensor(kTargets));
  check_hand_computed(cm);
  CHECK(train::accuracy(index_tensor(kPredicted), index_tensor(kTargets)) == doctest::Approx(7.0 / 11.0));
}

TEST_CASE("macro averages leave out a class that is neither a target nor a prediction (scikit-learn's rule)") {
  // the same samples counted in a 5-class matrix: class 4 never occurs, so the macro averages are
  // the 4-class ones above (scikit-learn averages over the labels present in y_true or y_pred)
  ConfusionMatrix cm(5);
  cm.update(index_tensor(kPredicted), index_tensor(kTargets));
  CHECK(cm.macro_precision() == doctest::Approx(29.0 / 60.0));
  CHECK(cm.macro_recall() == doctest::Approx(25.0 / 48.0));
  CHECK(cm.macro_f1() == doctest::Approx(0.5));
  // a class only ever predicted counts (precision 0, recall 0)
  ConfusionMatrix only_predicted(3);
  only_predicted.update(index_tensor({0, 2}), index_tensor({0, 0}));
  CHECK(only_predicted.macro_recall() == doctest::Approx(0.25));  // (1/2 + 0) / 2: class 1 left out
  CHECK(ConfusionMatrix(3).macro_f1() == 0.0);                    // nothing counted
}

TEST_CASE("confusion matrix from scores uses the argmax, accumulated over batches") {
  // one-hot-ish scores whose argmax is kPredicted, fed in two batches
  auto scores = [](size_t begin, size_t end) {
    std::vector<double> s;
    for (size_t i = begin; i < end; ++i)
      for (int64_t c = 0; c < 4; ++c) s.push_back(c == kPredicted[i] ? 2.5 : -0.1 * static_cast<double>(c));
    return tensor(s, {static_cast<int64_t>(end - begin), 4});
  };
  auto targets = [](size_t begin, size_t end) {
    return index_tensor(
        std::vector<int64_t>(kTargets.begin() + static_cast<long>(begin), kTargets.begin() + static_cast<long>(end)));
  };
  ConfusionMatrix cm(4);
  cm.update(scores(0, 6), targets(0, 6));
  CHECK(cm.total() == 6);
  cm.update(scores(6, 11), targets(6, 11));
  check_hand_computed(cm);
  CHECK(train::accuracy(scores(0, 11), targets(0, 11)) == doctest::Approx(7.0 / 11.0));
  cm.reset();
  CHECK(cm.total() == 0);
  CHECK(cm.accuracy() == 0.0);
}

TEST_CASE("a perfect classifier has every metric at 1 and bad input is rejected") {
  ConfusionMatrix cm(3);
  cm.update(index_tensor({0, 1, 2, 2}), index_tensor({0, 1, 2, 2}));
  CHECK(cm.macro_precision() == 1.0);
  CHECK(cm.macro_recall() == 1.0);
  CHECK(cm.macro_f1() == 1.0);
  CHECK_THROWS_AS(cm.update(index_tensor({0, 3}), index_tensor({0, 1})), std::invalid_argument);
  CHECK_THROWS_AS(cm.update(index_tensor({0, 1}), index_tensor({0})), std::invalid_argument);
  CHECK_THROWS_AS(cm.update(zeros({2, 5}), index_tensor({0, 1})), std::invalid_argument);
  CHECK_THROWS_AS(ConfusionMatrix(0), std::invalid_argument);
  CHECK(cm.to_string({"cat", "dog", "bird"}) ==
        "true \\ predicted\n"
        "     0 1 2\n"
        " cat 1 0 0\n"
        " dog 0 1 0\n"
        "bird 0 0 2\n");
}

// ---- sequences: one prediction per token ([N, T, C] scores, [N, T] targets) ---------------------

TEST_CASE("token accuracy, cross-entropy and perplexity of [N, T, C] logits against [N, T] targets") {
  // Two sequences of three tokens over 2 classes; logits [0, ln 3] put probability 3/4 on class 1.
  const double l3 = std::log(3.0);
  Tensor logits = tensor({0, l3, 0, l3, l3, 0,  //
                          0, 0, l3, 0, 0, l3},
                         {2, 3, 2}, DType::f64);
  Tensor targets = index_tensor({1, 0, 0, 1, 0, 1}, {2, 3});
  // argmax: 1 1 0 / 0 0 1 (the tie [0, 0] goes to the first class) → correct at 4 of the 6 positions
  CHECK(train::predicted_classes(logits) == std::vector<int64_t>{1, 1, 0, 0, 0, 1});
  CHECK(train::accuracy(logits, targets) == doctest::Approx(4.0 / 6.0));
  // −log p per token: ln(4/3), ln 4, ln(4/3), ln 2, ln(4/3), ln(4/3)
  const double ce = 4 * std::log(4.0 / 3.0) + std::log(4.0) + std::log(2.0);
  CHECK(train::cross_entropy_sum(logits, targets) == doctest::Approx(ce).epsilon(1e-12));
  CHECK(train::cross_entropy_sum(logits.to(DType::f32), targets) == doctest::Approx(ce).epsilon(1e-6));
  CHECK(train::perplexity(logits, targets) == doctest::Approx(std::exp(ce / 6)).epsilon(1e-12));
  // Uniform logits over V classes: perplexity V, whatever the targets.
  CHECK(train::perplexity(zeros({3, 4, 7}), index_tensor(std::vector<int64_t>(12, 5), {3, 4})) ==
        doctest::Approx(7.0).epsilon(1e-6));
  // The same counts as the equivalent [N·T, C] classification.
  ConfusionMatrix cm(2);
  cm.update(logits, targets);
  CHECK(cm.total() == 6);
  CHECK(cm.count(0, 1) == 1);
  CHECK(cm.accuracy() == doctest::Approx(4.0 / 6.0));
}

TEST_CASE("token metrics reject targets that do not fit the logits") {
  Tensor logits = zeros({2, 3, 4});
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(no std::invalid_argument)");
  };
  CHECK(message([&] {
          train::accuracy(logits, index_tensor({0, 1}, {2, 1}));
        }) == "accuracy: targets must be int64 [2, 3] for float32 outputs [2, 3, 4], got int64 [2, 1]");
  CHECK(message([&] {
          train::perplexity(logits, zeros({2, 3}));
        }) == "cross_entropy_sum: targets must be int64 [2, 3] for float32 outputs [2, 3, 4], got float32 [2, 3]");
  CHECK(message([&] {
          train::cross_entropy_sum(logits, index_tensor({0, 1, 2, 3, 4, 0}, {2, 3}));
        }) == "cross_entropy_sum: target 4 at position 4 is outside 0..3");
  CHECK(message([&] {
          train::cross_entropy_sum(zeros({4}), index_tensor({0}));
        }).find("expected floating logits [..., C]") != std::string::npos);
  CHECK(message([&] { train::predicted_classes(zeros({4})); }).find("got float32 [4]") != std::string::npos);
  ConfusionMatrix cm(4);
  CHECK_THROWS_AS(cm.update(logits, index_tensor({0, 1, 2}, {1, 3})), std::invalid_argument);
  CHECK(cm.total() == 0);
}

namespace {
/// Next-token data over V = 3 symbols: x [N, T] and y [N, T] (y = a fixed function of x at
/// positions where `follow` says so), and a bigram model Embedding(3, 3) whose table is 5·I:
/// its logits for token k are 5 at k and 0 elsewhere, so it predicts "the same token again".
struct Bigram {
  std::shared_ptr<nn::Sequential> model = std::make_shared<nn::Sequential>(nn::Embedding(3, 3));
  Bigram() {
    std::vector<float> w = {5, 0, 0, 0, 5, 0, 0, 0, 5};
    std::copy(w.begin(), w.end(), model->parameters()[0].mutable_data<float>());
  }
};
}  // namespace

TEST_CASE("evaluate and fit on [N, T] targets: token accuracy and perplexity") {
  Tensor x = index_tensor({0, 1, 2, 2, 1, 1, 0, 0}, {2, 4});
  Tensor y = index_tensor({0, 2, 2, 1, 1, 1, 0, 2}, {2, 4});  // the same token at 5 of the 8 positions
  auto data = std::make_shared<datasets::TensorDataset>(x, y);
  Bigram bigram;
  auto loss = [](const Tensor& out, const Tensor& t) {  // mean token cross-entropy
    return nn::F::cross_entropy(reshape(out, {-1, out.size(-1)}), reshape(t, {-1}));
  };
  train::Evaluation ev = train::evaluate(*bigram.model, loss, *data, 1);  // one sequence per batch
  CHECK(ev.samples == 2);
  CHECK(ev.predictions == 8);
  CHECK(ev.correct == 5);
  CHECK(ev.accuracy() == doctest::Approx(5.0 / 8.0));
  CHECK_FALSE(ev.confusion.has_value());
  // −log p: log(e⁵ + 2) − 5 where the token repeats, log(e⁵ + 2) where it does not
  const double z = std::log(std::exp(5.0) + 2.0), mean_ce = (5 * (z - 5) + 3 * z) / 8;
  CHECK(ev.loss == doctest::Approx(mean_ce).epsilon(1e-6));
  REQUIRE(ev.perplexity.has_value());
  CHECK(*ev.perplexity == doctest::Approx(std::exp(mean_ce)).epsilon(1e-6));
  CHECK(*ev.perplexity == doctest::Approx(std::exp(ev.loss)).epsilon(1e-6));

  // fit reports token accuracy, and perplexity on the validation data.
  optim::SGD sgd(bigram.model->parameters(), optim::SGDOptions(0.0));  // lr 0: the values stay known
  auto history = train::fit(*bigram.model, sgd, loss, data,
                            {.epochs = 1, .batch_size = 2, .shuffle = false, .validation_data = data, .quiet = true});
  const train::EpochLog& log = history.epochs.at(0);
  CHECK(log.get("accuracy") == doctest::Approx(5.0 / 8.0));
  CHECK(log.get("val_accuracy") == doctest::Approx(5.0 / 8.0));
  CHECK(log.get("val_perplexity") == doctest::Approx(std::exp(mean_ce)).epsilon(1e-6));

  // Classification targets [N] keep the confusion matrix and have no perplexity.
  auto flat = std::make_shared<datasets::TensorDataset>(reshape(x, {8}), reshape(y, {8}));
  train::Evaluation cls = train::evaluate(*bigram.model, loss, *flat);
  REQUIRE(cls.confusion.has_value());
  CHECK(cls.confusion->total() == 8);
  CHECK(cls.accuracy() == doctest::Approx(5.0 / 8.0));
  CHECK_FALSE(cls.perplexity.has_value());
}
