// The tape's own cost: a chain of tiny ops, y = tanh(y·1.0001 + 0.0001) on a 1-element tensor
// (3 recorded ops per link), forward and backward timed separately. Counter time_per_op is seconds per recorded op (SI prefixes: n = ns).
#include <benchmark/benchmark.h>

#include "autograd/autograd.hpp"

using namespace tapegrad;

namespace {
constexpr int kLinks = 1000;
constexpr int kOpsPerLink = 3;

/// Reports seconds per recorded op (the inverse rate of ops).
void set_time_per_op(benchmark::State& state) {
  state.counters["time_per_op"] = benchmark::Counter(static_cast<double>(state.iterations()) * kLinks * kOpsPerLink,
                                                     benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

Tensor chain(const Tensor& x) {
  Tensor y = x;
  for (int i = 0; i < kLinks; ++i) y = tanh(y * 1.0001 + 0.0001);
  return y;
}

void BM_TapeForward(benchmark::State& state) {
  Tensor x = tensor({0.5}).requires_grad_();
  for (auto _ : state) {
    Tensor y = chain(x);
    benchmark::DoNotOptimize(y.impl().get());
    state.PauseTiming();
    y = Tensor();  // free the graph outside the timed region
    state.ResumeTiming();
  }
  set_time_per_op(state);
}
BENCHMARK(BM_TapeForward)->Unit(benchmark::kMicrosecond);

void BM_TapeBackward(benchmark::State& state) {
  Tensor x = tensor({0.5}).requires_grad_();
  for (auto _ : state) {
    state.PauseTiming();
    Tensor y = chain(x);
    state.ResumeTiming();
    y.backward();
    benchmark::DoNotOptimize(x.grad().impl().get());
    state.PauseTiming();
    y = Tensor();
    x.zero_grad();
    state.ResumeTiming();
  }
  set_time_per_op(state);
}
BENCHMARK(BM_TapeBackward)->Unit(benchmark::kMicrosecond);

/// Forward + backward + freeing the graph, as a training loop pays it.
void BM_TapeRoundTrip(benchmark::State& state) {
  Tensor x = tensor({0.5}).requires_grad_();
  for (auto _ : state) {
    Tensor y = chain(x);
    y.backward();
    x.zero_grad();
  }
  set_time_per_op(state);
}
BENCHMARK(BM_TapeRoundTrip)->Unit(benchmark::kMicrosecond);

/// The same chain with recording off: the kernels' own cost, for reference.
void BM_NoGradForward(benchmark::State& state) {
  Tensor x = tensor({0.5});
  for (auto _ : state) {
    NoGradGuard guard;
    Tensor y = chain(x);
    benchmark::DoNotOptimize(y.impl().get());
  }
  set_time_per_op(state);
}
BENCHMARK(BM_NoGradForward)->Unit(benchmark::kMicrosecond);
}  // namespace
