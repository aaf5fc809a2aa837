#pragma once
/// \file bench_util.hpp
/// What the per-area suites (bench_elementwise, bench_reduce, bench_softmax, bench_train) share:
/// timing a backward pass alone, and the seed model's / small CNN's shapes.
#include <benchmark/benchmark.h>

#include <chrono>
#include <functional>
#include <initializer_list>

#include "autograd/autograd.hpp"

namespace tapegrad::bench {

/// Times `forward()`: the op recorded (its inputs require grad) and its node freed, as training pays it.
inline void time_forward(benchmark::State& state, const std::function<Tensor()>& forward) {
  for (auto _ : state) {
    Tensor result = forward();
    benchmark::DoNotOptimize(result.impl().get());
  }
}

/// Times `result.backward(grad)` alone, for a fresh graph from `forward` each iteration. The graph
/// is built and freed outside the timed region by manual timing (register with ->UseManualTime()):
/// PauseTiming/ResumeTiming cost more than a small op's backward. `leaves` get their grads cleared.
inline void time_backward(benchmark::State& state, const std::function<Tensor()>& forward, const Tensor& grad,
                          std::initializer_list<Tensor*> leaves) {
  for (auto _ : state) {
    Tensor result = forward();
    const auto t0 = std::chrono::steady_clock::now();
    result.backward(grad);
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    for (Tensor* leaf : leaves) leaf->zero_grad();
  }
}

/// Shapes named by index (Google Benchmark ranges are integers): activations of the seed MLP's hidden
/// layer at batch 32 and 256, its logits, and the small CNN's first conv block at batch 32.
inline Shape shape_of(int64_t index) {
  switch (index) {
    case 0: return {32, 128};          // seed MLP hidden, batch 32
    case 1: return {256, 128};         // seed MLP hidden, batch 256
    case 2: return {32, 10};           // seed MLP logits, batch 32
    case 3: return {256, 10};          // seed MLP logits, batch 256
    case 4: return {32, 32, 28, 28};   // CNN conv1 output, batch 32
    default: return {32, 64, 14, 14};  // CNN conv2 output, batch 32
  }
}

/// Labels the benchmark with the shape, e.g. "[256,128]".
inline void label_shape(benchmark::State& state, const Shape& shape) { state.SetLabel(to_string(shape)); }

}  // namespace tapegrad::bench
