// matmul forward and backward at the seed model's shapes: [B,784]·[784,128] and [B,128]·[128,10],
// B = 32 and 256 (float32, one BLAS thread), against a bare xtensor-blas gemm as the floor.
#include <benchmark/benchmark.h>

#include "autograd/autograd.hpp"

using namespace tapegrad;

namespace {

void BM_MatmulForward(benchmark::State& state) {
  const int64_t b = state.range(0), k = state.range(1), n = state.range(2);
  Tensor x = randn({b, k});
  Tensor w = randn({k, n}).requires_grad_();
  for (auto _ : state) {
    Tensor y = matmul(x, w);
    benchmark::DoNotOptimize(y.impl().get());
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * b * k * n * static_cast<double>(state.iterations()) * 1e-9,
                                                benchmark::Counter::kIsRate);
}

void BM_MatmulBackward(benchmark::State& state) {
  const int64_t b = state.range(0), k = state.range(1), n = state.range(2);
  Tensor x = randn({b, k}).requires_grad_();
  Tensor w = randn({k, n}).requires_grad_();
  Tensor g = randn({b, n});
  for (auto _ : state) {
    state.PauseTiming();
    Tensor y = matmul(x, w);
    state.ResumeTiming();
    y.backward(g);
    state.PauseTiming();
    x.zero_grad();
    w.zero_grad();
    state.ResumeTiming();
  }
  state.counters["GFLOPS"] = benchmark::Counter(4.0 * b * k * n * static_cast<double>(state.iterations()) * 1e-9,
                                                benchmark::Counter::kIsRate);
}

/// The seed MLP's two layers, forward + backward, no optimizer.
void BM_SeedMlpForwardBackward(benchmark::State& state) {
  const int64_t b = state.range(0);
  Tensor x = randn({b, 784});
  Tensor w1 = randn({784, 128}, DType::f32, default_generator(), 0, 0.05).requires_grad_();
  Tensor b1 = zeros({128}).requires_grad_();
  Tensor w2 = randn({128, 10}, DType::f32, default_generator(), 0, 0.05).requires_grad_();
  Tensor b2 = zeros({10}).requires_grad_();
  Tensor onehot = one_hot(index_tensor(std::vector<int64_t>(static_cast<size_t>(b), 3)), 10);
  for (auto _ : state) {
    Tensor h = relu(matmul(x, w1) + b1);
    Tensor loss = -mean(sum(log_softmax(matmul(h, w2) + b2, 1) * onehot, {1}));
    loss.backward();
    for (Tensor* p : {&w1, &b1, &w2, &b2}) p->zero_grad();
  }
}

#define SEED_SHAPES Args({32, 784, 128})->Args({256, 784, 128})->Args({32, 128, 10})->Args({256, 128, 10})
BENCHMARK(BM_MatmulForward)->SEED_SHAPES->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MatmulBackward)->SEED_SHAPES->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SeedMlpForwardBackward)->Arg(32)->Arg(256)->Unit(benchmark::kMicrosecond);

}  // namespace
