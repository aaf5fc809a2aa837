// Attributions (nn/explain.hpp) on the seed MLP (softmax output) and the small CNN, one 28×28 image:
// Integrated Gradients of 64 steps (one batch of 64 path points), the same path's gradient with
// grad() pruned to the input (what integrated_gradients does) against unpruned (every weight
// gradient computed too, as grad() did before the engine skipped nodes leading only to weights),
// and saliency of a batch of 32.
//
//     build/bench/bench_explain --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Argument 0: the model (0 = seed MLP, 1 = CNN); BM_IGPath's argument 1: pruned (1) or not (0).
#include <benchmark/benchmark.h>

#include "autograd/autograd.hpp"
#include "nn/explain.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;

namespace {

/// The seed MLP (Flatten → Dense(128, relu) → Dense(10, softmax)) or examples/mnist_cnn's CNN (+ softmax).
std::shared_ptr<nn::Sequential> model_of(int64_t which) {
  Generator gen(1);
  if (which == 0)
    return std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128, gen), nn::ReLU(),
                                            nn::Linear(128, 10, gen), nn::Softmax());
  return std::make_shared<nn::Sequential>(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1), gen), nn::ReLU(),
                                          nn::MaxPool2d(2), nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1), gen),
                                          nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(64 * 7 * 7, 128, gen),
                                          nn::ReLU(), nn::Linear(128, 10, gen), nn::Softmax());
}

void label_model(benchmark::State& state) { state.SetLabel(state.range(0) == 0 ? "seed MLP" : "CNN"); }

}  // namespace

/// nn::integrated_gradients, 64 steps, one image: the path's batch plus F(x) and F(baseline).
static void BM_IntegratedGradients(benchmark::State& state) {
  auto model = model_of(state.range(0));
  model->eval();
  Tensor x = rand({1, 1, 28, 28});
  for (auto _ : state) {
    auto ig =
        nn::integrated_gradients(*model, x, nn::Target::class_index(3), nn::IntegratedGradientsOptions().steps(64));
    benchmark::DoNotOptimize(ig.attributions.impl().get());
  }
  label_model(state);
}
BENCHMARK(BM_IntegratedGradients)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

/// The gradient of IG's 64 path points: forward of the batch, then grad() with respect to the path
/// only (pruned: nodes and GEMMs that lead only to weights skipped) or to the path and every
/// parameter (unpruned: the work grad() did before pruning). Same graph, same input gradient.
static void BM_IGPath(benchmark::State& state) {
  auto model = model_of(state.range(0));
  const bool pruned = state.range(1) == 1;
  Tensor x = rand({1, 1, 28, 28});
  Tensor alpha = reshape(div(add(arange(0, 64, 1), 0.5), 64.0), {64, 1, 1, 1});
  Tensor path_data = mul(alpha, x);  // zero baseline: α·x, [64, 1, 28, 28]
  std::vector<Tensor> params = model->parameters();
  for (auto _ : state) {
    Tensor path = path_data.detach().requires_grad_();
    Tensor score = sum(slice((*model)(path), 1, 3, 4));
    std::vector<Tensor> inputs{path};
    if (!pruned) inputs.insert(inputs.end(), params.begin(), params.end());
    auto g = grad({score}, inputs);
    benchmark::DoNotOptimize(g[0].impl().get());
  }
  state.SetLabel(std::string(state.range(0) == 0 ? "seed MLP" : "CNN") + (pruned ? ", pruned" : ", unpruned"));
}
BENCHMARK(BM_IGPath)->ArgsProduct({{0, 1}, {1, 0}})->Unit(benchmark::kMillisecond);

/// nn::saliency of a batch of 32 images.
static void BM_Saliency(benchmark::State& state) {
  auto model = model_of(state.range(0));
  model->eval();
  Tensor x = rand({32, 1, 28, 28});
  for (auto _ : state) {
    Tensor s = nn::saliency(*model, x, nn::Target::class_index(3));
    benchmark::DoNotOptimize(s.impl().get());
  }
  label_model(state);
}
BENCHMARK(BM_Saliency)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
