// The README's nn / optim / datasets examples, compiled and run so that they stay true.
#include <doctest/doctest.h>

#include <sstream>

#include "datasets/datasets.hpp"
#include "nn/fit.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;

namespace {
// README: a user-defined module registers its parts and writes forward.
struct TwoLayerNet : nn::UnaryModule {
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::Dropout> drop;
  TwoLayerNet(int64_t in, int64_t hidden, int64_t out) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(in, hidden));
    drop = register_module("drop", std::make_shared<nn::Dropout>(0.1));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, out));
  }
  Tensor forward(const Tensor& x) override { return (*fc2)((*drop)(gelu((*fc1)(x)))); }
};

/// Two separable blobs of 2-D points, labels 0/1.
std::shared_ptr<datasets::TensorDataset> blobs(int64_t n) {
  Generator gen(3);
  Tensor x = randn({n, 2}, DType::f32, gen);
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    y[static_cast<size_t>(i)] = i % 2;
    x.mutable_data<float>()[2 * i] += i % 2 ? 3.f : -3.f;
  }
  return std::make_shared<datasets::TensorDataset>(x, index_tensor(y));
}
}  // namespace

TEST_CASE("README: the seed model in Keras style trains and evaluates") {
  manual_seed(1);
  auto train = blobs(256), test = blobs(64);
  auto model = std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(2, 16), nn::ReLU(), nn::Linear(16, 2));
  optim::Adam optimizer(model->parameters(), optim::AdamOptions(1e-2));
  auto loss = [](const Tensor& out, const Tensor& y) { return nn::F::cross_entropy(out, y); };
  std::ostringstream log;
  auto history = nn::fit(*model, optimizer, loss, train, {.epochs = 5, .batch_size = 32, .out = &log});
  auto result = nn::evaluate(*model, loss, *test);
  CHECK(history.epochs.size() == 5);
  CHECK(result.accuracy() > 0.95);
  CHECK(log.str().find("Epoch 5/5") != std::string::npos);
  CHECK(model->summary({1, 2}).find("Linear") != std::string::npos);
}

TEST_CASE("README: a user-defined module") {
  TwoLayerNet net(4, 8, 3);
  auto names = net.named_parameters();
  REQUIRE(names.size() == 4);
  CHECK(names[0].first == "fc1.weight");
  CHECK(names[3].first == "fc2.bias");
  net.eval();
  Tensor y = net(randn({5, 4}));
  CHECK(y.shape() == Shape{5, 3});
  optim::SGD sgd(net.parameters(), optim::SGDOptions(0.1).momentum(0.9));
  net.train();
  sum(net(randn({5, 4}))).backward();
  sgd.step();
  CHECK(net.fc1->parameters()[0].grad().defined());
}
