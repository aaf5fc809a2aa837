// The README's nn / optim / datasets examples, compiled and run so that they stay true.
#include <doctest/doctest.h>

#include <cmath>
#include <iostream>
#include <sstream>
#include <type_traits>

#include "autograd/gradcheck.hpp"
#include "datasets/datasets.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"
#include "train/fit.hpp"

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

// README: a module with other inputs derives from nn::Module and writes the forward it needs.
struct MaskedMean : nn::Module {  // x [N, T, D], mask [N, T, 1] of 0 / 1 → [N, D]
  std::shared_ptr<nn::Linear> proj;
  explicit MaskedMean(int64_t dim) {
    proj = register_module("proj", std::make_shared<nn::Linear>(nn::LinearOptions(dim, dim).bias(false)));
  }
  Tensor forward(const Tensor& x, const Tensor& mask) { return sum((*proj)(x) * mask, {1}) / sum(mask, {1}); }
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
  auto history = train::fit(*model, optimizer, loss, train, {.epochs = 5, .batch_size = 32, .out = &log});
  auto result = train::evaluate(*model, loss, *test);
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

TEST_CASE("README: a module with two inputs, options structs, to(f64) and gradcheck, summary on token ids") {
  static_assert(!std::is_constructible_v<nn::Sequential, MaskedMean>);
  MaskedMean pool(2);
  {
    NoGradGuard no_grad;
    std::vector<float> identity = {1, 0, 0, 1};
    std::copy(identity.begin(), identity.end(), pool.proj->weight.mutable_data<float>());
  }
  Tensor x = tensor({1, 2, 3, 4, 10, 20, 5, 6, 7, 8, 30, 40}, {2, 3, 2});
  Tensor mask = tensor({1, 1, 0, 0, 1, 1}, {2, 3, 1});
  CHECK(pool.forward(x, mask).to_vector() == std::vector<double>{2, 3, 18.5, 24});  // means of unmasked rows
  nn::ModuleList list;
  list.push_back(std::make_shared<MaskedMean>(2));
  CHECK(list.at<MaskedMean>(0)->forward(x, mask).shape() == Shape{2, 2});

  nn::Conv2d conv(nn::Conv2dOptions(1, 32, 3).stride(2).padding(1));  // nn::Conv2d(1, 32, 3) for the defaults
  nn::LayerNorm norm(nn::LayerNormOptions({128}).eps(1e-6).elementwise_affine(false));
  CHECK(conv(zeros({1, 1, 28, 28})).shape() == Shape{1, 32, 14, 14});
  CHECK(norm.parameters().empty());

  manual_seed(4);
  auto model = std::make_shared<nn::Sequential>(nn::Linear(3, 4), nn::Tanh(), nn::Linear(4, 2));
  x = randn({5, 3}, DType::f64);
  Tensor y = index_tensor({0, 1, 1, 0, 1});
  model->to(DType::f64);
  auto check = gradcheck([&](const std::vector<Tensor>&) { return nn::F::cross_entropy((*model)(x), y); },
                         model->parameters());  // x float64; perturbs the parameters in place
  CHECK_MESSAGE(check.ok, check.message);

  auto lm = std::make_shared<nn::Sequential>(nn::Embedding(65, 16), nn::Linear(16, 65));
  std::ostringstream out;
  out << lm->summary({1, 64}, DType::i64);
  CHECK(out.str().find("[1, 64, 65]") != std::string::npos);
}

TEST_CASE("README: a GPT forward, its loss, and cached generation") {
  manual_seed(2);
  Generator gen(5);
  // The README's sizes, but a vocabulary of 13 and a smaller model so the test runs quickly.
  nn::GPT model(nn::GPTConfig{.vocab_size = 13, .block_size = 16, .n_layer = 2, .n_head = 2, .n_embd = 16});
  auto tokens = [&] {
    std::vector<int64_t> ids(32);
    for (auto& id : ids) id = static_cast<int64_t>(gen.below(13));
    return index_tensor(ids, {2, 16});
  };
  Tensor x = tokens(), y = tokens();
  Tensor logits = model.forward(x);  // x int64 [B, T] -> [B, T, V]
  Tensor loss = nn::GPT::loss(logits, y);
  CHECK(logits.shape() == Shape{2, 16, 13});
  CHECK(loss.item() == doctest::Approx(std::log(13.0)).epsilon(0.05));  // untrained: about ln V
  model.eval();
  Tensor prompt = index_tensor({1, 2, 3}, {1, 3});
  Generator a(7), b(7);
  Tensor text = model.generate(prompt, 10, 0.8, 5, a);  // key/value cache
  CHECK(text.shape() == Shape{1, 13});
  CHECK(text.to_vector() == model.generate(prompt, 10, 0.8, 5, b, /*use_cache=*/false).to_vector());
}

// README "Your own data": the includes this section needs (appended here, beside its test).
#include <fstream>

#include "datasets/fixture_mnist.hpp"

TEST_CASE("README: your own data, the seed model trained from an .npz and a CSV dataset") {
  testing::TempDir dir("readme_npz");
  {
    // What np.savez("digits.npz", x=images.astype(np.float32) / 255, y=labels) writes: x float32
    // [N, 28, 28], y uint8 [N] (here from the toy MNIST-format set).
    testing::write_toy_mnist(dir.path.string(), 300, 10);
    auto digits = datasets::load_mnist(dir.path.string(), datasets::Split::train);
    datasets::write_npz(dir.file("digits.npz"),
                        {{"x", datasets::tensor_to_npy(digits->images().reshape({300, 28, 28}))},
                         {"y", datasets::tensor_to_npy(digits->labels(), datasets::NpyType::u8)}});
  }
  const std::string path = dir.file("digits.npz");
  manual_seed(1);
  // README: begin
  auto arrays = datasets::load_npz(path);                // name → Tensor, in file order
  auto train = std::make_shared<datasets::TensorDataset>(datasets::find_array(arrays, "x"),
                                                         datasets::find_array(arrays, "y"));  // uint8 → int64
  auto model = std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
  optim::Adam optimizer(model->parameters(), optim::AdamOptions(1e-3));
  auto loss = [](const Tensor& out, const Tensor& y) { return nn::F::cross_entropy(out, y); };
  train::fit(*model, optimizer, loss, train, {.epochs = 5, .batch_size = 32, .quiet = true});
  // README: end
  CHECK(train->y().dtype() == DType::i64);
  CHECK(train::evaluate(*model, loss, *train).accuracy() > 0.9);

  std::ofstream(dir.file("iris.csv")) << "sepal_length,sepal_width,petal_length,petal_width,species\n"
                                         "5.1,3.5,1.4,0.2,0\n7.0,3.2,4.7,1.4,1\n6.3,3.3,6.0,2.5,2\n";
  auto iris = datasets::load_csv_dataset(dir.file("iris.csv"), {.target = "species"});  // x [N, 4] float32, y [N] int64
  CHECK(iris->x().shape() == Shape{3, 4});
  CHECK(iris->y().to_vector() == std::vector<double>{0, 1, 2});
}
