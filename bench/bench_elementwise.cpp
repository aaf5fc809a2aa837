// Elementwise ops, forward (recorded: the input requires grad) and backward separately, at the seed
// MLP's hidden activations [32,128] / [256,128] and the small CNN's conv outputs [32,32,28,28] /
// [32,64,14,14]. Binary ops: same-shape mul, and the bias add that broadcasts [128] over the rows.
// Counter bytes_per_second counts each element read and written once.
#include "bench/bench_util.hpp"

using namespace tapegrad;
using bench::shape_of;

namespace {
using Unary = Tensor (*)(const Tensor&);

void BM_UnaryForward(benchmark::State& state, Unary op) {
  const Shape shape = shape_of(state.range(0));
  Tensor x = randn(shape).requires_grad_();
  bench::time_forward(state, [&] { return op(x); });
  bench::label_shape(state, shape);
  state.SetBytesProcessed(state.iterations() * x.numel() * 2 * int64_t(sizeof(float)));
}

void BM_UnaryBackward(benchmark::State& state, Unary op) {
  const Shape shape = shape_of(state.range(0));
  Tensor x = randn(shape).requires_grad_();
  Tensor g = randn(shape);
  bench::time_backward(state, [&] { return op(x); }, g, {&x});
  bench::label_shape(state, shape);
  state.SetBytesProcessed(state.iterations() * x.numel() * 3 * int64_t(sizeof(float)));
}

Tensor relu_op(const Tensor& x) { return relu(x); }
Tensor tanh_op(const Tensor& x) { return tapegrad::tanh(x); }
Tensor sigmoid_op(const Tensor& x) { return sigmoid(x); }
Tensor exp_op(const Tensor& x) { return tapegrad::exp(x); }
Tensor gelu_op(const Tensor& x) { return gelu(x); }
Tensor gelu_tanh_op(const Tensor& x) { return gelu(x, GeluApproximate::tanh); }
Tensor scale_shift_op(const Tensor& x) { return x * 1.0001 + 0.0001; }  // two scalar ops, as the tape chain

#define UNARY_SHAPES Arg(0)->Arg(1)->Arg(4)->Arg(5)
BENCHMARK_CAPTURE(BM_UnaryForward, relu, relu_op)->UNARY_SHAPES->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryBackward, relu, relu_op)->UNARY_SHAPES->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryForward, tanh, tanh_op)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryBackward, tanh, tanh_op)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryForward, sigmoid, sigmoid_op)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryBackward, sigmoid, sigmoid_op)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryForward, exp, exp_op)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryBackward, exp, exp_op)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryForward, gelu, gelu_op)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryBackward, gelu, gelu_op)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryForward, gelu_tanh, gelu_tanh_op)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryBackward, gelu_tanh, gelu_tanh_op)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryForward, scale_shift, scale_shift_op)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_UnaryBackward, scale_shift, scale_shift_op)
    ->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMicrosecond);

/// The bias add of a linear layer written as a broadcasting add: [B,128] + [128]. Its backward
/// undoes the broadcast (sum_to over the rows) for the bias.
void BM_BiasAddForward(benchmark::State& state) {
  const Shape shape = shape_of(state.range(0));
  Tensor x = randn(shape).requires_grad_();
  Tensor b = randn({shape.back()}).requires_grad_();
  bench::time_forward(state, [&] { return x + b; });
  bench::label_shape(state, shape);
  state.SetBytesProcessed(state.iterations() * x.numel() * 2 * int64_t(sizeof(float)));
}
BENCHMARK(BM_BiasAddForward)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_BiasAddBackward(benchmark::State& state) {
  const Shape shape = shape_of(state.range(0));
  Tensor x = randn(shape).requires_grad_();
  Tensor b = randn({shape.back()}).requires_grad_();
  Tensor g = randn(shape);
  bench::time_backward(state, [&] { return x + b; }, g, {&x, &b});
  bench::label_shape(state, shape);
  state.SetBytesProcessed(state.iterations() * x.numel() * 2 * int64_t(sizeof(float)));
}
BENCHMARK(BM_BiasAddBackward)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMicrosecond);

/// Same-shape product, both operands requiring grad (backward writes two gradients).
void BM_MulForward(benchmark::State& state) {
  const Shape shape = shape_of(state.range(0));
  Tensor a = randn(shape).requires_grad_();
  Tensor b = randn(shape).requires_grad_();
  bench::time_forward(state, [&] { return a * b; });
  bench::label_shape(state, shape);
  state.SetBytesProcessed(state.iterations() * a.numel() * 3 * int64_t(sizeof(float)));
}
BENCHMARK(BM_MulForward)->Arg(0)->Arg(1)->Arg(4)->Unit(benchmark::kMicrosecond);

void BM_MulBackward(benchmark::State& state) {
  const Shape shape = shape_of(state.range(0));
  Tensor a = randn(shape).requires_grad_();
  Tensor b = randn(shape).requires_grad_();
  Tensor g = randn(shape);
  bench::time_backward(state, [&] { return a * b; }, g, {&a, &b});
  bench::label_shape(state, shape);
  state.SetBytesProcessed(state.iterations() * a.numel() * 5 * int64_t(sizeof(float)));
}
BENCHMARK(BM_MulBackward)->Arg(0)->Arg(1)->Arg(4)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
