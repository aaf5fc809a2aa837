// Intra-op thread scaling (autograd/parallel.hpp): the same work at 1 and 2 threads, the thread
// count as the last range argument, so one run shows both side by side:
//   build/bench/bench_parallel --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Wall-clock time (UseRealTime): Google Benchmark's CPU time is the main thread's alone, which
// would hide the second thread's share. Every other bench_* runs at TAPEGRAD_NUM_THREADS (1 when
// unset), e.g. `TAPEGRAD_NUM_THREADS=2 build/bench/bench_nn --benchmark_filter=SeedMlpTrainStep` for the
// seed MLP's step, whose small tensors must not get slower at 2 threads.
#include <benchmark/benchmark.h>

#include "autograd/autograd.hpp"
#include "autograd/parallel.hpp"
#include "bench_util.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;

namespace {

/// Sets the thread count for one benchmark and restores the previous one.
struct Threads {
  int prev = get_num_threads();
  explicit Threads(benchmark::State& state, int64_t n) {
    set_num_threads(static_cast<int>(n));
    state.counters["threads"] = static_cast<double>(n);
  }
  ~Threads() { set_num_threads(prev); }
};

}  // namespace

// ---- a large elementwise op: [2048, 2048] float32 (16 MiB per operand) ----------------------------
static void BM_LargeAdd(benchmark::State& state) {
  Threads threads(state, state.range(0));
  Tensor a = randn({2048, 2048}), b = randn({2048, 2048});
  for (auto _ : state) benchmark::DoNotOptimize(add(a, b).impl().get());
  state.SetBytesProcessed(state.iterations() * 3 * 2048 * 2048 * 4);
}
BENCHMARK(BM_LargeAdd)->Arg(1)->Arg(2)->UseRealTime();

static void BM_LargeGelu(benchmark::State& state) {
  Threads threads(state, state.range(0));
  Tensor a = randn({2048, 2048});
  for (auto _ : state) benchmark::DoNotOptimize(gelu(a).impl().get());
  state.SetItemsProcessed(state.iterations() * 2048 * 2048);
}
BENCHMARK(BM_LargeGelu)->Arg(1)->Arg(2)->UseRealTime();

static void BM_LargeSum(benchmark::State& state) {
  Threads threads(state, state.range(0));
  Tensor a = randn({2048, 2048});
  for (auto _ : state) benchmark::DoNotOptimize(sum(a).impl().get());
  state.SetItemsProcessed(state.iterations() * 2048 * 2048);
}
BENCHMARK(BM_LargeSum)->Arg(1)->Arg(2)->UseRealTime();

// ---- conv2d forward + backward at the small CNN's second layer (32 → 64 channels, 14×14), ---------
// batch range(0); threads range(1)
static void BM_Conv2dForwardBackwardThreads(benchmark::State& state) {
  Threads threads(state, state.range(1));
  const int64_t batch = state.range(0);
  nn::Conv2d conv(nn::Conv2dOptions(32, 64, 3).padding(1));
  Tensor x = randn({batch, 32, 14, 14}).requires_grad_();
  for (auto _ : state) {
    Tensor y = conv(x).sum();
    y.backward();
    conv.zero_grad();
    x.zero_grad();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_Conv2dForwardBackwardThreads)->Args({32, 1})->Args({32, 2})->UseRealTime();
