// Memory: without retain_graph, backward releases every tensor saved for it, so the bytes held by
// tensor storage (counted by the library's allocator, not RSS) return to the same level after every
// training step.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "autograd/autograd.hpp"
#include "autograd/storage.hpp"
#include "datasets/dataset.hpp"
#include "nn/nn.hpp"
#include "optim/adam.hpp"
#include "train/fit.hpp"

using namespace tapegrad;

namespace {
struct Toy {
  std::shared_ptr<nn::Sequential> model;
  Tensor x, y;
};
Toy toy() {
  manual_seed(3);
  Toy t{std::make_shared<nn::Sequential>(nn::Linear(20, 64), nn::ReLU(), nn::Dropout(0.2), nn::Linear(64, 64),
                                         nn::Tanh(), nn::Linear(64, 5)),
        randn({32, 20}), {}};
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 32; ++i) labels.push_back(i % 5);
  t.y = index_tensor(labels);
  return t;
}
}  // namespace

TEST_CASE("10,000 Adam steps of an MLP: storage bytes return to the same level after every step") {
  Toy t = toy();
  optim::Adam adam(t.model->parameters(), optim::AdamOptions(1e-3));
  auto step = [&] {
    adam.zero_grad();
    Tensor loss = nn::functional::cross_entropy((*t.model)(t.x), t.y);
    loss.backward();
    adam.step();
    return loss.item();
  };
  step();  // the first step creates Adam's moments and the gradients
  const int64_t level = storage_stats().live_bytes;
  const int64_t buffers = storage_stats().live_buffers;
  int64_t first_bad = -1, bad_bytes = 0;
  double first_loss = 0, last_loss = 0;
  for (int64_t i = 0; i < 10000; ++i) {
    last_loss = step();
    if (i == 0) first_loss = last_loss;
    const StorageStats s = storage_stats();
    if (first_bad < 0 && (s.live_bytes != level || s.live_buffers != buffers)) {
      first_bad = i;
      bad_bytes = s.live_bytes;
    }
  }
  INFO("step " << first_bad << " left " << bad_bytes << " live bytes, expected " << level);
  CHECK(first_bad == -1);
  CHECK(last_loss < first_loss);  // it did train
}

TEST_CASE("the storage count sees a graph kept alive across steps (the flat-memory check can fail)") {
  Toy t = toy();
  optim::Adam adam(t.model->parameters(), optim::AdamOptions(1e-3));
  std::vector<Tensor> kept;  // losses with their graphs, as a leaking loop would hold them
  int64_t before = 0;
  for (int i = 0; i < 5; ++i) {
    adam.zero_grad();
    Tensor loss = nn::functional::cross_entropy((*t.model)(t.x), t.y);
    loss.backward(Tensor(), /*retain_graph=*/true);
    adam.step();
    kept.push_back(loss);
    const int64_t now = storage_stats().live_bytes;
    if (i > 1) CHECK(now > before);  // every retained graph holds its saved activations
    before = now;
  }
  kept.clear();
}

TEST_CASE("backward without retain_graph frees the saved tensors while the loss is still alive") {
  Toy t = toy();
  const int64_t params = storage_stats().live_bytes;
  Tensor loss = nn::functional::cross_entropy((*t.model)(t.x), t.y);
  const int64_t with_graph = storage_stats().live_bytes;
  loss.backward();
  const int64_t grads = [&] {
    int64_t n = 0;
    for (const Tensor& p : t.model->parameters()) n += p.grad().numel() * 4;
    return n;
  }();
  CHECK(with_graph > params + 32 * 64 * 4);  // activations are saved
  // What remains: parameters, their gradients and the loss itself (one float, in its own buffer).
  CHECK(storage_stats().live_bytes == params + grads + 4);
}

namespace {
// Records the live storage bytes at the end of every epoch (every batch tensor is gone by then).
struct LiveBytes : train::Callback {
  std::vector<int64_t> per_epoch;
  void on_epoch_end(train::TrainState&, const train::EpochLog&) override { per_epoch.push_back(storage_stats().live_bytes); }
};
}  // namespace

TEST_CASE("fit with shuffling, validation and a run state per epoch holds the same storage after every epoch") {
  manual_seed(4);
  auto model = std::make_shared<nn::Sequential>(nn::Linear(20, 32), nn::ReLU(), nn::Dropout(0.3), nn::Linear(32, 5));
  optim::Adam adam(model->parameters(), optim::AdamOptions(1e-3));
  Tensor x = randn({100, 20});
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 100; ++i) labels.push_back(i % 5);
  auto data = std::make_shared<datasets::TensorDataset>(x, index_tensor(labels));
  auto probe = std::make_shared<LiveBytes>();
  const std::string ckpt = "reliability_memory_" + std::to_string(::getpid()) + ".state";
  train::fit(*model, adam, [](const Tensor& o, const Tensor& t) { return nn::functional::cross_entropy(o, t); }, data,
             {.epochs = 30, .batch_size = 16, .seed = 2, .validation_split = 0.2, .callbacks = {probe}, .quiet = true,
              .state_path = ckpt});
  std::remove(ckpt.c_str());
  REQUIRE(probe->per_epoch.size() == 30);
  for (size_t e = 1; e < probe->per_epoch.size(); ++e) {
    CAPTURE(e);
    CHECK(probe->per_epoch[e] == probe->per_epoch[0]);
  }
}

TEST_CASE("the peak of live bytes is tracked and can be reset") {
  reset_peak_storage();
  const int64_t base = storage_stats().live_bytes;
  CHECK(storage_stats().peak_live_bytes == base);
  {
    Tensor big = zeros({1000, 1000});  // 4 MB live for a moment
    Tensor other = zeros({10});
    CHECK(storage_stats().peak_live_bytes >= base + 4000000);
  }
  CHECK(storage_stats().live_bytes == base);
  CHECK(storage_stats().peak_live_bytes >= base + 4000040);  // the peak stays after the free
  reset_peak_storage();
  CHECK(storage_stats().peak_live_bytes == base);
}
