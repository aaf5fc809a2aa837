// Metrics against confusion matrices computed by hand.
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"
#include "nn/metrics.hpp"

using namespace tapegrad;
using tapegrad::nn::ConfusionMatrix;

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
  CHECK(nn::accuracy(index_tensor(kPredicted), index_tensor(kTargets)) == doctest::Approx(7.0 / 11.0));
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
    return index_tensor(std::vector<int64_t>(kTargets.begin() + static_cast<long>(begin),
                                             kTargets.begin() + static_cast<long>(end)));
  };
  ConfusionMatrix cm(4);
  cm.update(scores(0, 6), targets(0, 6));
  CHECK(cm.total() == 6);
  cm.update(scores(6, 11), targets(6, 11));
  check_hand_computed(cm);
  CHECK(nn::accuracy(scores(0, 11), targets(0, 11)) == doctest::Approx(7.0 / 11.0));
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
