#pragma once
/// \file registry.hpp
/// The op registry, in the spirit of PyTorch's OpInfo: every differentiable op registers a
/// function and sample inputs (float64, covering broadcasting and edge shapes); one test runs
/// gradcheck and gradgradcheck over all of them, and `bench_registry` (bench/registry_bench.hpp)
/// times the forward and the backward of every op that also has benchmark inputs (float32,
/// realistic sizes). Users register their own ops the same way:
///
///     tapegrad::register_op({.name = "cube", .family = "custom",
///                            .fn = [](const std::vector<Tensor>& in) { return cube(in[0]); },
///                            .samples = [] { return std::vector<OpSample>{{{randn({3}, DType::f64).requires_grad_()}, "1-D"}}; },
///                            .bench = [] { return OpBench({bench_randn({256, 1024})}); }});
///
/// Which ops are in it: autograd's built-ins (autograd/registry.cpp), always; nn's layers and
/// losses (nn/register_ops.cpp) in every program that includes nn/functional.hpp or a header
/// including it (nn/nn.hpp, layers.hpp, conv.hpp, norm.hpp, transformer.hpp): it queues them, see
/// register_op_group, and no call is needed (`nn::register_ops()` remains, idempotent; with a
/// shared libtapegrad.so, whose nn objects all load, every program has them); and the program's
/// own. docs/adding_an_op.md walks through writing, registering, checking and benchmarking an op.
#include <functional>
#include <string>
#include <vector>

#include "autograd/gradcheck.hpp"

namespace tapegrad {

/// One gradcheck case of an op.
struct OpSample {
  std::vector<Tensor> inputs;  ///< float64 (int64 for indices); requires_grad on those to check
  std::string description;      ///< what the case covers ("row broadcast", "0-d")
};

/// What bench_registry times for one op: float32 inputs at a realistic size (those requiring grad
/// get gradients in the backward benchmark) and, only where the registered `OpInfo::fn` fixes a
/// setting meant for the small gradcheck samples (an output shape, attention's 2×3 tiles), the
/// same op at the benchmark's size. A lambda returning `std::vector<Tensor>` converts to it.
struct OpBench {
  std::vector<Tensor> inputs;  ///< float32 at a realistic size; int64 / bool for indices and masks
  TensorFunction fn;           ///< empty: the op's own OpInfo::fn
  /// Implicit, so that a maker may return the inputs alone.
  OpBench(std::vector<Tensor> inputs_, TensorFunction fn_ = {}) : inputs(std::move(inputs_)), fn(std::move(fn_)) {}
};

/// One registry entry. Fields have defaults ({}), so designated initializers may leave out the
/// optional ones (check_gradgrad, atol, rtol, bench) without -Wmissing-field-initializers.
struct OpInfo {
  std::string name = {};    ///< unique; nn's start with "nn."
  std::string family = {};  ///< elementwise, reduce, linalg, shape, softmax, nn, custom ...
  TensorFunction fn = {};   ///< the op as a function of its inputs
  std::function<std::vector<OpSample>()> samples = {};  ///< float64 inputs for gradcheck
  bool check_gradgrad = true;  ///< false only for ops whose gradient is piecewise constant in a way
                               ///< central differences cannot see (documented per op)
  double atol = 1e-5;  ///< gradcheck's absolute tolerance for this op
  double rtol = 1e-3;  ///< gradcheck's relative tolerance for this op
  /// Optional: makes the benchmark's inputs (called when the benchmark runs, so the tensors exist
  /// only while it does). Ops without one are not benchmarked by bench_registry.
  std::function<OpBench()> bench = {};
};

/// Adds an op; a second registration under the same name replaces the first. Throws
/// std::invalid_argument naming the op when it has no name, function or samples.
void register_op(OpInfo info);
/// All registered ops: autograd's built-ins (registered on first use), the groups queued with
/// register_op_group, and any added with register_op since.
const std::vector<OpInfo>& op_registry();
/// The op registered under `name`; std::out_of_range if there is none.
const OpInfo& find_op(const std::string& name);

/// A float32 benchmark input of normal values, requiring grad unless told otherwise. Benchmark
/// inputs come from a generator of their own: making them never changes the gradcheck samples.
Tensor bench_randn(const Shape& shape, bool requires_grad = true);
/// A float32 benchmark input uniform in [low, high) (divisors, logarithms, probabilities).
Tensor bench_rand(const Shape& shape, double low, double high, bool requires_grad = true);
/// int64 benchmark indices uniform in [0, high) (targets, gathers); std::invalid_argument if high < 1.
Tensor bench_indices(const Shape& shape, int64_t high);

/// Queues a function that registers a group of ops; it runs once, before the next register_op,
/// op_registry or find_op returns (queuing the same function again does nothing). This is how a
/// layer above autograd adds its ops without autograd seeing it: nn/functional.hpp queues
/// nn's (linear, conv2d, pooling, norms, losses, attention; their code lives in nn/) from an
/// inline variable, so every program that includes it has them, with no call to make and no
/// static registrar in a .cpp for the linker to drop from a static library.
void register_op_group(void (*group)());

}  // namespace tapegrad
