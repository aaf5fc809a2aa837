// fit / evaluate / predict and the callbacks on a toy problem: three Gaussian blobs in 2-D.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/autograd.hpp"
#include "datasets/dataset.hpp"
#include "datasets/fixture_mnist.hpp"
#include "nn/nn.hpp"
#include "optim/sgd.hpp"
#include "train/fit.hpp"

using namespace tapegrad;
using datasets::TensorDataset;

namespace {
// n points per class around (−2, 0), (2, 0), (0, 2.5) with std 0.6; labels 0, 1, 2.
std::shared_ptr<TensorDataset> blobs(int64_t n, uint64_t seed) {
  Generator gen(seed);
  const double cx[3] = {-2, 2, 0}, cy[3] = {0, 0, 2.5};
  std::vector<double> xs;
  std::vector<int64_t> ys;
  for (int64_t i = 0; i < 3 * n; ++i) {
    int64_t c = i % 3;
    xs.push_back(cx[c] + 0.6 * gen.normal());
    xs.push_back(cy[c] + 0.6 * gen.normal());
    ys.push_back(c);
  }
  return std::make_shared<TensorDataset>(tensor(xs, {3 * n, 2}), index_tensor(ys));
}
Tensor ce(const Tensor& logits, const Tensor& y) { return nn::functional::cross_entropy(logits, y); }
std::shared_ptr<nn::Sequential> make_model(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<nn::Sequential>(nn::Linear(2, 16), nn::ReLU(), nn::Linear(16, 3));
}
std::vector<double> flat_params(const nn::Module& m) {
  std::vector<double> out;
  for (const Tensor& p : m.parameters())
    for (double v : p.to_vector()) out.push_back(v);
  return out;
}
}  // namespace

TEST_CASE("fit learns the blobs and reports per-epoch loss and accuracy") {
  auto model = make_model(1);
  optim::SGD sgd(model->parameters(), optim::SGDOptions(0.1));
  std::ostringstream out;
  auto history = train::fit(*model, sgd, ce, blobs(100, 3),
                            {.epochs = 8, .batch_size = 16, .seed = 5, .validation_split = 0.2, .out = &out});
  REQUIRE(history.epochs.size() == 8);
  CHECK(history.stop_reason == "completed");
  CHECK(history.steps == 8 * 15);  // 240 training samples in batches of 16
  auto loss = history.series("loss");
  CHECK(loss.back() < 0.5 * loss.front());
  CHECK(history.epochs.back().get("accuracy") > 0.9);
  CHECK(history.epochs.back().get("val_accuracy") > 0.9);
  CHECK(history.epochs.back().has("val_loss"));
  CHECK_THROWS_AS(history.epochs.back().get("f1"), std::invalid_argument);
  // one line per epoch, Keras-like
  std::string text = out.str();
  CHECK(text.find("Epoch 1/8 - ") != std::string::npos);
  CHECK(text.find("Epoch 8/8 - ") != std::string::npos);
  CHECK(text.find(" - loss: ") < text.find(" - accuracy: "));
  CHECK(text.find(" - val_loss: ") != std::string::npos);
  auto j = nlohmann::json::parse(history.to_json());
  CHECK(j["epochs"].size() == 8);
  CHECK(j["epochs"][7]["accuracy"].get<double>() == doctest::Approx(history.epochs[7].get("accuracy")));

  auto test = blobs(50, 99);
  train::Evaluation ev = train::evaluate(*model, ce, *test, 64);
  CHECK(ev.samples == 150);
  REQUIRE(ev.confusion);
  CHECK(ev.accuracy() > 0.9);
  CHECK(model->is_training());  // evaluate restores the mode
  auto nothing = std::make_shared<datasets::TensorDataset>(zeros({0, 2}), index_tensor({}, Shape{0}));
  CHECK_THROWS_WITH_AS(train::evaluate(*model, ce, *nothing, 64), doctest::Contains("the dataset is empty"),
                       std::invalid_argument);  // was loss 0 over 0 samples
  Tensor logits = train::predict(*model, *test, 64);
  CHECK(logits.shape() == Shape{150, 3});
  CHECK(train::accuracy(logits, test->y()) == doctest::Approx(ev.accuracy()));
  // other batch sizes give the same outputs (up to gemm's summation order)
  CHECK(max(abs(train::predict(*model, test->x(), 7) - logits)).item() < 1e-5);
}

TEST_CASE("fit is reproducible from its seeds and quiet prints nothing") {
  auto run = [](uint64_t seed) {
    auto model = make_model(2);
    optim::SGD sgd(model->parameters(), optim::SGDOptions(0.05));
    std::ostringstream out;
    auto h = train::fit(*model, sgd, ce, blobs(30, 4), {.epochs = 3, .batch_size = 8, .seed = seed, .quiet = true, .out = &out});
    CHECK(out.str().empty());
    return h.series("loss");
  };
  CHECK(run(7) == run(7));
  CHECK(run(7) != run(8));
}

TEST_CASE("EarlyStopping stops after `patience` epochs without improvement beyond min_delta") {
  auto data = blobs(20, 6);
  auto stalled = [&](bool early_stop) {
    auto model = make_model(3);
    optim::SGD sgd(model->parameters(), optim::SGDOptions(1e-12));  // the loss cannot move
    train::FitOptions o{.epochs = 10, .batch_size = 10, .validation_split = 0.25, .quiet = true};
    if (early_stop)
      o.callbacks.push_back(std::make_shared<train::EarlyStopping>(
          train::EarlyStoppingOptions{.monitor = "val_loss", .patience = 2, .min_delta = 1e-6}));
    return train::fit(*model, sgd, ce, data, o);
  };
  CHECK(stalled(false).epochs.size() == 10);
  auto h = stalled(true);
  CHECK(h.epochs.size() == 3);  // epoch 1 sets the best, epochs 2 and 3 do not improve
  CHECK(h.stop_reason.find("early stopping: val_loss did not improve for 2 epochs") == 0);
  CHECK_THROWS_AS(train::EarlyStopping({.patience = -1}), std::invalid_argument);
}

// Remembers the weights after epoch 1, then wrecks them: all zero but the last bias, which
// predicts class 0 with confidence (cross-entropy ≈ 13 on balanced data).
struct Saboteur : train::Callback {
  std::vector<double> after_first;
  void on_epoch_end(train::TrainState& s, const train::EpochLog& log) override {
    if (log.epoch != 1) return;
    after_first = flat_params(s.model);
    NoGradGuard no_grad;
    auto params = s.model.parameters();
    for (Tensor p : params) std::fill_n(p.mutable_data<float>(), p.numel(), 0.f);
    std::copy_n(std::vector<float>{10.f, -10.f, -10.f}.begin(), 3, params.back().mutable_data<float>());
  }
};

TEST_CASE("EarlyStopping with restore_best brings back the best epoch's weights") {
  for (bool restore : {false, true}) {
    CAPTURE(restore);
    auto model = make_model(4);
    optim::SGD sgd(model->parameters(), optim::SGDOptions(1e-6));
    auto early = std::make_shared<train::EarlyStopping>(
        train::EarlyStoppingOptions{.monitor = "val_loss", .patience = 1, .restore_best = restore});
    auto saboteur = std::make_shared<Saboteur>();
    auto h = train::fit(*model, sgd, ce, blobs(20, 7),
                        {.epochs = 5, .validation_split = 0.3, .callbacks = {early, saboteur}, .quiet = true});
    CHECK(h.epochs.size() == 2);
    CHECK(early->best_epoch() == 1);
    CHECK((flat_params(*model) == saboteur->after_first) == restore);
    // the restore is reported (printed unless quiet, kept in the history and its JSON)
    REQUIRE(h.notes.size() == (restore ? 1u : 0u));
    if (restore) {
      CHECK(h.notes[0].rfind("EarlyStopping: restored the weights of epoch 1 (best val_loss ", 0) == 0);
      CHECK(h.to_json().find("restored the weights of epoch 1") != std::string::npos);
      std::ostringstream printed;
      auto model2 = make_model(4);
      optim::SGD sgd2(model2->parameters(), optim::SGDOptions(1e-6));
      auto early2 = std::make_shared<train::EarlyStopping>(
          train::EarlyStoppingOptions{.monitor = "val_loss", .patience = 1, .restore_best = true});
      train::fit(*model2, sgd2, ce, blobs(20, 7),
                 {.epochs = 5, .validation_split = 0.3, .callbacks = {early2, std::make_shared<Saboteur>()}, .out = &printed});
      CHECK(printed.str().find("early stopping: val_loss did not improve") != std::string::npos);
      CHECK(printed.str().find("EarlyStopping: restored the weights of epoch 1") != std::string::npos);
    }
  }
}

TEST_CASE("MaxSteps stops mid-epoch and ConvergenceStop stops a converged loss") {
  auto data = blobs(16, 8);  // 48 samples: 6 batches of 8
  {
    auto model = make_model(5);
    optim::SGD sgd(model->parameters(), optim::SGDOptions(0.1));
    auto h = train::fit(*model, sgd, ce, data,
                     {.epochs = 4, .batch_size = 8, .callbacks = {std::make_shared<train::MaxSteps>(9)}, .quiet = true});
    CHECK(h.steps == 9);
    CHECK(h.epochs.size() == 2);
    CHECK(h.epochs[1].steps == 3);
    CHECK(h.stop_reason == "reached max_steps = 9");
  }
  {
    auto model = make_model(5);
    optim::SGD sgd(model->parameters(), optim::SGDOptions(1e-9));
    auto h = train::fit(*model, sgd, ce, data,
                        {.epochs = 6, .batch_size = 8, .shuffle = false,
                         .callbacks = {std::make_shared<train::ConvergenceStop>(1e-4)}, .quiet = true});
    CHECK(h.epochs.size() == 2);
    CHECK(h.stop_reason.find("converged: loss") == 0);
  }
  CHECK_THROWS_AS(train::MaxSteps(0), std::invalid_argument);
  CHECK_THROWS_AS(train::ConvergenceStop(0.0), std::invalid_argument);
}

TEST_CASE("ModelCheckpoint saves loadable weights, only on improvement with save_best_only") {
  tapegrad::testing::TempDir tmp("ckpt");
  const auto& dir = tmp.path;
  auto model = make_model(6);
  optim::SGD sgd(model->parameters(), optim::SGDOptions(0.1));
  auto every = std::make_shared<train::ModelCheckpoint>((dir / "every_{epoch}.safetensors").string(), "loss");
  auto best = std::make_shared<train::ModelCheckpoint>((dir / "best.safetensors").string(), "loss", true);
  train::fit(*model, sgd, ce, blobs(20, 9), {.epochs = 3, .batch_size = 10, .callbacks = {every, best}, .quiet = true});
  CHECK(every->saved().size() == 3);
  CHECK(std::filesystem::exists(dir / "every_3.safetensors"));
  CHECK(!best->saved().empty());
  auto copy = make_model(77);
  REQUIRE(flat_params(*copy) != flat_params(*model));
  nn::load(*copy, (dir / "every_3.safetensors").string());
  CHECK(flat_params(*copy) == flat_params(*model));
}

TEST_CASE("fit rejects bad options") {
  auto model = make_model(7);
  optim::SGD sgd(model->parameters(), optim::SGDOptions(0.1));
  auto data = blobs(4, 1);
  CHECK_THROWS_AS(train::fit(*model, sgd, ce, data, {.batch_size = 0}), std::invalid_argument);
  CHECK_THROWS_AS(train::fit(*model, sgd, ce, data, {.validation_split = 1.5}), std::invalid_argument);
  CHECK_THROWS_AS(train::fit(*model, sgd, ce, nullptr, {}), std::invalid_argument);
}
