#pragma once
/// \file registry_bench.hpp
/// Google Benchmarks made from the op registry (autograd/registry.hpp): two for every registered op
/// that has benchmark inputs (`OpInfo::bench`), built-in, nn or the program's own:
///
/// - `<op>/forward/process_time`: the op recorded on the tape (its inputs require grad), the node
///   freed at the end of the iteration, as training pays it; its cpu_time is the process's (every
///   thread's);
/// - `<op>/backward/manual_time` (the suffix is Google Benchmark's for manual timing): only
///   `result.backward(grad)` of a freshly recorded forward, timed by hand (the forward and the
///   freeing of the graph and gradients are outside it); its counter `backward_cpu_time` is the
///   process CPU time of the backward alone, per iteration (seconds).
///
/// A benchmark main for one's own ops takes two lines (bench/user_op_bench.cpp is one):
///
///     int main(int argc, char** argv) {
///       tapegrad::register_op({... , .bench = [] { return tapegrad::OpBench({...}); }});  // the op
///       return tapegrad::bench::registry_benchmark_main(argc, argv);  // every registered op's benchmarks
///     }
///
/// bench/bench_registry.cpp is that main without the first line. A main of one's own (with other
/// benchmarks too) calls `register_registry_benchmarks()` before `benchmark::RunSpecifiedBenchmarks()`.
/// `--benchmark_filter='nn\.'` or `'/backward'` narrows the run as usual; scripts/bench_baseline.py
/// compares the JSON of two runs.
#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <exception>
#include <set>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "bench/bench_util.hpp"

namespace tapegrad::bench {

namespace detail {

/// CPU time of the whole process (every thread: OpenBLAS's too), in seconds. On a shared machine
/// it moves far less than wall time when other programs take the cores.
inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// The op's benchmark inputs and function; false (the benchmark skipped with the message) when the
/// maker throws or gives no input.
inline bool make_case(benchmark::State& state, const std::string& op_name, std::vector<Tensor>& inputs,
                      TensorFunction& fn) {
  try {
    const OpInfo& op = find_op(op_name);
    OpBench b = op.bench();
    if (b.inputs.empty()) {
      state.SkipWithError(("op '" + op_name + "': its benchmark maker returned no inputs").c_str());
      return false;
    }
    std::string label;
    for (const Tensor& t : b.inputs) {
      if (!label.empty()) label += ' ';
      label += t.defined() ? (t.dtype() == DType::f32 ? "" : dtype_name(t.dtype())) + to_string(t.shape()) : "-";
    }
    state.SetLabel(label);
    inputs = std::move(b.inputs);
    fn = b.fn ? std::move(b.fn) : op.fn;
    return true;
  } catch (const std::exception& e) {
    state.SkipWithError(("op '" + op_name + "': making its benchmark inputs failed: " + e.what()).c_str());
    return false;
  }
}

inline void run_forward(benchmark::State& state, const std::string& op_name) {
  std::vector<Tensor> inputs;
  TensorFunction fn;
  if (!make_case(state, op_name, inputs, fn)) return;
  try {
    fn(inputs);  // one untimed call: an op that throws on its own inputs is reported, not timed
  } catch (const std::exception& e) {
    state.SkipWithError(("op '" + op_name + "' failed on its benchmark inputs: " + e.what()).c_str());
    return;
  }
  time_forward(state, [&] { return fn(inputs); });
}

inline void run_backward(benchmark::State& state, const std::string& op_name) {
  std::vector<Tensor> inputs;
  TensorFunction fn;
  if (!make_case(state, op_name, inputs, fn)) return;
  std::vector<Tensor> leaves;  // their gradients are cleared after each iteration, as zero_grad does
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad() && t.is_leaf()) leaves.push_back(t);
  Tensor grad;  // a fixed seed of the result's shape; a 0-d result is seeded with 1 by backward()
  try {
    Tensor probe = fn(inputs);
    if (!probe.requires_grad()) {
      state.SkipWithError(("op '" + op_name + "': its result does not require grad (no benchmark input requires grad, "
                           "or the op is not differentiable), so there is no backward to time").c_str());
      return;
    }
    if (probe.dim() > 0) grad = randn(probe.shape(), probe.dtype());
    probe.backward(grad);  // untimed: a backward that throws is reported, and first-touch allocations are paid
    for (Tensor& t : leaves) t.zero_grad();
  } catch (const std::exception& e) {
    state.SkipWithError(("op '" + op_name + "' failed on its benchmark inputs: " + e.what()).c_str());
    return;
  }
  double cpu_seconds = 0;
  for (auto _ : state) {
    Tensor result = fn(inputs);
    const double c0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    result.backward(grad);
    const auto t1 = std::chrono::steady_clock::now();
    cpu_seconds += process_cpu_seconds() - c0;
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    for (Tensor& t : leaves) t.zero_grad();
  }
  // Google Benchmark's cpu_time of a manually timed benchmark covers the whole iteration; this is
  // the backward's alone (seconds per iteration), what bench_baseline.py --metric cpu compares.
  state.counters["backward_cpu_time"] = benchmark::Counter(cpu_seconds, benchmark::Counter::kAvgIterations);
}

}  // namespace detail

/// Registers `<op>/forward` and `<op>/backward` (microseconds; reported as
/// `<op>/forward/process_time` and `<op>/backward/manual_time`) for every op in `op_registry()` that
/// has benchmark inputs and has not been registered by an earlier call, and returns how many
/// benchmarks it added. Call it after the program's own register_op calls and before
/// `benchmark::RunSpecifiedBenchmarks()`. The op is looked up by name when its benchmark runs, so
/// the inputs exist only while it does.
inline int register_registry_benchmarks() {
  static std::set<std::string> registered;
  int added = 0;
  for (const OpInfo& op : op_registry()) {
    if (!op.bench || !registered.insert(op.name).second) continue;
    const std::string name = op.name;
    benchmark::RegisterBenchmark((name + "/forward").c_str(),
                                 [name](benchmark::State& state) { detail::run_forward(state, name); })
        ->Unit(benchmark::kMicrosecond)
        ->MeasureProcessCPUTime();  // cpu_time of every thread, as backward_cpu_time
    benchmark::RegisterBenchmark((name + "/backward").c_str(),
                                 [name](benchmark::State& state) { detail::run_backward(state, name); })
        ->Unit(benchmark::kMicrosecond)
        ->UseManualTime();
    added += 2;
  }
  return added;
}

/// Google Benchmark's main with the registry's benchmarks: parses the --benchmark_* flags (an
/// unknown flag is an error), registers, runs, and returns the exit status.
inline int registry_benchmark_main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_registry_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace tapegrad::bench
