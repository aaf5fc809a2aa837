// nn and optim hot spots at MNIST shapes: Linear and Conv2d forward + backward over batch sizes,
// the seed MLP's training step, and one Adam step over its 101,770 parameters.
#include <benchmark/benchmark.h>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;

static void BM_LinearForwardBackward(benchmark::State& state) {
  const int64_t batch = state.range(0);
  nn::Linear fc(784, 128);
  Tensor x = randn({batch, 784});
  for (auto _ : state) {
    Tensor y = fc(x).sum();
    y.backward();
    fc.zero_grad();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_LinearForwardBackward)->Arg(32)->Arg(128)->Arg(512);

static void BM_Conv2dForwardBackward(benchmark::State& state) {
  const int64_t batch = state.range(0);
  nn::Conv2d conv(1, 32, 3, 1, 1);
  Tensor x = randn({batch, 1, 28, 28});
  for (auto _ : state) {
    Tensor y = conv(x).sum();
    y.backward();
    conv.zero_grad();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_Conv2dForwardBackward)->Arg(32)->Arg(128);

static void BM_Conv2dForward(benchmark::State& state) {
  nn::Conv2d conv(32, 64, 3, 1, 1);
  Tensor x = randn({state.range(0), 32, 14, 14});
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(conv(x));
}
BENCHMARK(BM_Conv2dForward)->Arg(32);

/// One Adam training step of `model` on a fixed batch of state.range(0) images per iteration.
static void train_steps(benchmark::State& state, nn::Module& model) {
  optim::Adam opt(model.parameters());
  Tensor x = rand({state.range(0), 1, 28, 28});
  std::vector<int64_t> labels(static_cast<size_t>(state.range(0)));
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 10);
  Tensor t = index_tensor(labels);
  for (auto _ : state) {
    opt.zero_grad();
    Tensor loss = F::cross_entropy(model(x), t);
    loss.backward();
    opt.step();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

static void BM_SeedMlpTrainStep(benchmark::State& state) {
  nn::Sequential model(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
  train_steps(state, model);
}
BENCHMARK(BM_SeedMlpTrainStep)->Arg(32)->Arg(128);

static void BM_AdamStepSeedMlp(benchmark::State& state) {
  auto model = std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
  auto params = model->parameters();
  for (auto& p : params) p.set_grad(randn(p.shape()));
  optim::Adam opt(params);
  for (auto _ : state) opt.step();
  state.SetItemsProcessed(state.iterations() * 101770);
}
BENCHMARK(BM_AdamStepSeedMlp);

// ---- the small CNN of examples/mnist_cnn.cpp: pooling alone and one whole training step ----

static void BM_MaxPool2dForwardBackward(benchmark::State& state) {
  Tensor x = randn({32, state.range(0), 28, 28}).requires_grad_();
  for (auto _ : state) {
    Tensor y = F::max_pool2d(x, 2).sum();
    y.backward();
    x.zero_grad();
  }
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_MaxPool2dForwardBackward)->Arg(32);

static void BM_MaxPool2dForward(benchmark::State& state) {
  Tensor x = randn({32, state.range(0), 28, 28});
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(F::max_pool2d(x, 2));
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_MaxPool2dForward)->Arg(32);

static void BM_SmallCnnTrainStep(benchmark::State& state) {
  nn::Sequential model(nn::Conv2d(1, 32, 3, 1, 1), nn::ReLU(), nn::MaxPool2d(2), nn::Conv2d(32, 64, 3, 1, 1), nn::ReLU(),
                       nn::MaxPool2d(2), nn::Flatten(), nn::Linear(64 * 7 * 7, 128), nn::ReLU(), nn::Linear(128, 10));
  train_steps(state, model);
}
BENCHMARK(BM_SmallCnnTrainStep)->Arg(32);
