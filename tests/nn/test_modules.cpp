// Modules: registration and dotted names, Sequential (the seed model), train/eval, summary,
// layer output shapes, BatchNorm train vs eval, dropout scaling, initializers.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;

namespace {
struct Net : nn::UnaryModule {
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::BatchNorm1d> bn;
  Net() {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8));
    bn = register_module("bn", std::make_shared<nn::BatchNorm1d>(8));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 2));
  }
  Tensor forward(const Tensor& x) override { return (*fc2)(relu((*bn)((*fc1)(x)))); }
};
}  // namespace

TEST_CASE("the seed model: Sequential, dotted names, parameter count, summary") {
  auto model = std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
  int64_t total = 0;
  for (auto& p : model->parameters()) total += p.numel();
  CHECK(total == 101770);
  auto named = model->named_parameters();
  REQUIRE(named.size() == 4);
  CHECK(named[0].first == "1.weight");
  CHECK(named[3].first == "3.bias");
  CHECK(model->children().size() == 4);
  CHECK((*model)(zeros({5, 1, 28, 28})).shape() == Shape{5, 10});
  std::string s = model->summary({1, 1, 28, 28});
  CHECK(s.find("Linear(784 → 128)") != std::string::npos);
  CHECK(s.find("[1, 784]") != std::string::npos);
  CHECK(s.find("100480") != std::string::npos);
  CHECK(s.find("Total params: 101770") != std::string::npos);
  CHECK(model->is_training());  // summary restores the mode
}

TEST_CASE("a user-defined module registers its parts recursively") {
  Net net;
  std::vector<std::string> names;
  for (auto& [n, t] : net.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight", "fc2.bias"});
  std::vector<std::string> buffers;
  for (auto& [n, t] : net.named_buffers()) buffers.push_back(n);
  CHECK(buffers == std::vector<std::string>{"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"});
  CHECK(net.state_dict().size() == 9);
  net.eval();
  CHECK_FALSE(net.bn->is_training());
  net.train();
  CHECK(net.fc1->is_training());
  Tensor loss = net(randn({3, 4})).sum();
  loss.backward();
  CHECK(net.fc1->weight.grad().defined());
  net.zero_grad();
  CHECK_FALSE(net.fc1->weight.grad().defined());
  // nested Sequential gets dotted names two levels deep
  nn::Sequential outer(nn::Sequential(nn::Linear(2, 2)), nn::Linear(2, 1));
  CHECK(outer.named_parameters()[0].first == "0.0.weight");
}

TEST_CASE("layer output shapes") {
  CHECK(nn::Linear(3, 5)(zeros({2, 7, 3})).shape() == Shape{2, 7, 5});
  CHECK(nn::Flatten()(zeros({2, 3, 4})).shape() == Shape{2, 12});
  CHECK(nn::Embedding(10, 4)(index_tensor({1, 2, 3, 9, 0, 0}, {2, 3})).shape() == Shape{2, 3, 4});
  CHECK(nn::LayerNorm({4})(zeros({2, 3, 4})).shape() == Shape{2, 3, 4});
  CHECK(nn::BatchNorm2d(3)(randn({2, 3, 4, 4})).shape() == Shape{2, 3, 4, 4});
  CHECK(nn::AvgPool2d(2)(zeros({1, 2, 5, 5})).shape() == Shape{1, 2, 2, 2});
  for (nn::UnaryModulePtr act :
       std::vector<nn::UnaryModulePtr>{std::make_shared<nn::ReLU>(), std::make_shared<nn::LeakyReLU>(),
                                       std::make_shared<nn::Sigmoid>(), std::make_shared<nn::Tanh>(),
                                       std::make_shared<nn::GELU>(), std::make_shared<nn::Softmax>(),
                                       std::make_shared<nn::LogSoftmax>()})
    CHECK((*act)(zeros({2, 3})).shape() == Shape{2, 3});
  CHECK(nn::LeakyReLU(0.1)(tensor({-2.0, 3.0})).to_vector()[0] == doctest::Approx(-0.2));
  CHECK_THROWS_AS(nn::Linear(0, 3), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::Linear(3, 2)(zeros({2, 4})), doctest::Contains("linear"), ShapeError);
  CHECK_THROWS_AS(nn::Embedding(3, 2)(index_tensor({3})), ShapeError);
  CHECK_THROWS_AS(nn::Embedding(3, 2)(zeros({2})), DTypeError);
  CHECK_THROWS_WITH_AS(nn::BatchNorm2d(3)(zeros({2, 3, 4})), doctest::Contains("BatchNorm2d(3)"), ShapeError);
  CHECK_THROWS_AS(nn::LayerNorm({5})(zeros({2, 4})), ShapeError);
}

TEST_CASE("BatchNorm: batch statistics in training, running statistics in eval") {
  nn::BatchNorm1d bn(nn::BatchNormOptions(2).momentum(0.5));
  Tensor x = tensor({1, 10, 3, 20, 5, 30}, {3, 2});
  Tensor y = bn(x);
  // training: each column normalised to mean 0, biased variance 1
  auto v = y.to_vector();
  CHECK(v[0] + v[2] + v[4] == doctest::Approx(0).epsilon(1e-6));
  CHECK((v[0] * v[0] + v[2] * v[2] + v[4] * v[4]) / 3 == doctest::Approx(1).epsilon(1e-4));
  // running: 0.5·init + 0.5·stat, with the unbiased variance (4 and 100)
  CHECK(bn.running_mean.to_vector() == std::vector<double>{1.5, 10});
  CHECK(bn.running_var.to_vector()[0] == doctest::Approx(0.5 + 0.5 * 4));
  CHECK(bn.running_var.to_vector()[1] == doctest::Approx(0.5 + 0.5 * 100));
  CHECK(bn.num_batches_tracked.item() == 1);
  bn.eval();
  Tensor e = bn(x);
  CHECK(e.at({0, 0}) == doctest::Approx((1 - 1.5) / std::sqrt(2.5 + 1e-5)));
  CHECK(bn.running_mean.to_vector() == std::vector<double>{1.5, 10});  // eval leaves them alone
  CHECK(bn.num_batches_tracked.item() == 1);
  nn::BatchNorm1d train_bn(2);
  CHECK_THROWS_WITH_AS(train_bn(zeros({1, 2})), doctest::Contains("more than 1 value"), ShapeError);
}

TEST_CASE("dropout: scaling, reproducibility, inactive in eval") {
  Generator g1(99), g2(99);
  Tensor x = ones({100, 100});
  Tensor a = F::dropout(x, 0.25, true, g1), b = F::dropout(x, 0.25, true, g2);
  CHECK(a.to_vector() == b.to_vector());
  int zeros_count = 0;
  for (double v : a.to_vector()) {
    if (v == 0) ++zeros_count;
    else CHECK(v == doctest::Approx(1 / 0.75));
  }
  CHECK(zeros_count > 2200);
  CHECK(zeros_count < 2800);
  double mean = a.mean().item();
  CHECK(mean == doctest::Approx(1.0).epsilon(0.05));
  nn::Dropout drop(0.5);
  drop.eval();
  CHECK(drop(x).is_same(x));
  CHECK(F::dropout(x, 1.0, true).sum().item() == 0);
  CHECK_THROWS_AS(nn::Dropout(1.5), std::invalid_argument);
  // a non-floating input is refused by dropout itself (not by an initialiser it calls), in eval
  // too, before the generator draws
  Generator g3(7), fresh(7);
  for (bool training : {true, false}) {
    CHECK_THROWS_WITH_AS(F::dropout(index_tensor({1, 2}), 0.5, training, g3),
                         "tapegrad::nn::dropout: expected a floating input (float32, float64), got int64 [2]", DTypeError);
    CHECK_THROWS_WITH_AS(F::dropout(ones({2}, DType::b8), 0.5, training, g3), doctest::Contains("nn::dropout: expected a floating"),
                         DTypeError);
  }
  CHECK(g3.uniform() == fresh.uniform());
}

TEST_CASE("initializers are seeded and have the documented bounds") {
  Generator g1(7), g2(7);
  Tensor a = nn::init::xavier_uniform_(Tensor::empty({64, 32}), 1.0, g1);
  Tensor b = nn::init::xavier_uniform_(Tensor::empty({64, 32}), 1.0, g2);
  CHECK(a.to_vector() == b.to_vector());
  const double bound = std::sqrt(6.0 / 96);
  for (double v : a.to_vector()) CHECK(std::abs(v) <= bound);
  Tensor k = nn::init::kaiming_normal_(Tensor::empty({256, 128}), 0, nn::init::FanMode::fan_in, nn::init::Nonlinearity::relu, g1);
  double sd = std::sqrt(var(k).item());
  CHECK(sd == doctest::Approx(std::sqrt(2.0 / 128)).epsilon(0.05));
  Tensor c = nn::init::kaiming_uniform_(Tensor::empty({8, 3, 3, 3}), std::sqrt(5.0));  // PyTorch's conv default
  for (double v : c.to_vector()) CHECK(std::abs(v) <= 1 / std::sqrt(27.0));
  CHECK(nn::init::fans(Tensor::empty({8, 3, 3, 3})) == std::pair<int64_t, int64_t>{27, 72});
  CHECK(nn::init::constant_(Tensor::empty({2}), 3).to_vector() == std::vector<double>{3, 3});
  CHECK(nn::init::calculate_gain(nn::init::Nonlinearity::tanh) == doctest::Approx(5.0 / 3));
  manual_seed(5);
  auto w1 = nn::Linear(3, 3).weight.to_vector();
  manual_seed(5);
  CHECK(nn::Linear(3, 3).weight.to_vector() == w1);
  CHECK_THROWS_AS(nn::init::normal_(index_tensor({1})), DTypeError);
}
