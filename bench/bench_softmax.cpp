// Softmax and cross-entropy, forward (recorded) and backward separately, on the seed MLP's logits
// [32,10] and [256,10] and on wider rows [256,1000] where the kernels' own speed shows. The fused
// nn::functional::cross_entropy is timed against the composite −mean(Σ log_softmax · one_hot), and
// on a character GPT's token logits with options and in the [B, V, T] layout.
#include "bench/bench_util.hpp"
#include "nn/functional.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;

namespace {

Shape logits_shape(int64_t index) { return index == 0 ? Shape{32, 10} : index == 1 ? Shape{256, 10} : Shape{256, 1000}; }

Tensor labels_for(const Shape& shape) {
  std::vector<int64_t> labels(static_cast<size_t>(shape[0]));
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>((i * 7) % static_cast<size_t>(shape[1]));
  return index_tensor(labels);
}

void softmax_forward(benchmark::State& state, const std::function<Tensor(const Tensor&)>& op) {
  const Shape shape = logits_shape(state.range(0));
  Tensor x = randn(shape).requires_grad_();
  bench::time_forward(state, [&] { return op(x); });
  bench::label_shape(state, shape);
  state.SetItemsProcessed(state.iterations() * shape[0]);  // rows
}

void softmax_backward(benchmark::State& state, const std::function<Tensor(const Tensor&)>& op) {
  const Shape shape = logits_shape(state.range(0));
  Tensor x = randn(shape).requires_grad_();
  Tensor g = randn(shape);
  bench::time_backward(state, [&] { return op(x); }, g, {&x});
  bench::label_shape(state, shape);
  state.SetItemsProcessed(state.iterations() * shape[0]);
}

/// A loss (scalar) of logits and labels, forward or backward.
void loss_forward(benchmark::State& state, const std::function<Tensor(const Tensor&, const Tensor&)>& loss) {
  const Shape shape = logits_shape(state.range(0));
  Tensor x = randn(shape).requires_grad_();
  Tensor t = labels_for(shape);
  bench::time_forward(state, [&] { return loss(x, t); });
  bench::label_shape(state, shape);
  state.SetItemsProcessed(state.iterations() * shape[0]);
}

void loss_backward(benchmark::State& state, const std::function<Tensor(const Tensor&, const Tensor&)>& loss) {
  const Shape shape = logits_shape(state.range(0));
  Tensor x = randn(shape).requires_grad_();
  Tensor t = labels_for(shape);
  bench::time_backward(state, [&] { return loss(x, t); }, Tensor(), {&x});
  bench::label_shape(state, shape);
  state.SetItemsProcessed(state.iterations() * shape[0]);
}

Tensor softmax_rows(const Tensor& x) { return softmax(x, 1); }
Tensor log_softmax_rows(const Tensor& x) { return log_softmax(x, 1); }
Tensor fused_cross_entropy(const Tensor& x, const Tensor& t) { return F::cross_entropy(x, t); }
Tensor composite_cross_entropy(const Tensor& x, const Tensor& t) {
  return -mean(sum(log_softmax(x, 1) * one_hot(t, x.size(1)), {1}));
}

void BM_SoftmaxForward(benchmark::State& s) { softmax_forward(s, softmax_rows); }
void BM_SoftmaxBackward(benchmark::State& s) { softmax_backward(s, softmax_rows); }
void BM_LogSoftmaxForward(benchmark::State& s) { softmax_forward(s, log_softmax_rows); }
void BM_LogSoftmaxBackward(benchmark::State& s) { softmax_backward(s, log_softmax_rows); }
void BM_CrossEntropyForward(benchmark::State& s) { loss_forward(s, fused_cross_entropy); }
void BM_CrossEntropyBackward(benchmark::State& s) { loss_backward(s, fused_cross_entropy); }
void BM_CompositeCrossEntropyForward(benchmark::State& s) { loss_forward(s, composite_cross_entropy); }
void BM_CompositeCrossEntropyBackward(benchmark::State& s) { loss_backward(s, composite_cross_entropy); }

/// A character GPT's loss (batch 12, context 64, 113 symbols): 0 as rows [768, 113]; 1 the same
/// with label smoothing 0.1 and ignore_index (the fused kernel's option path); 2 in PyTorch's
/// layout [12, 113, 64] with targets [12, 64] (strided rows).
Tensor token_loss(const Tensor& x, const Tensor& t, int64_t variant) {
  if (variant == 1) return F::cross_entropy(x, t, F::CrossEntropyOptions().label_smoothing(0.1).ignore_index(0));
  return F::cross_entropy(x, t);
}
std::pair<Tensor, Tensor> token_inputs(int64_t variant) {
  const int64_t B = 12, T = 64, V = 113;
  Tensor t = labels_for({B * T, V});
  if (variant == 2) return {randn({B, V, T}).requires_grad_(), reshape(t, {B, T})};
  return {randn({B * T, V}).requires_grad_(), t};
}
void BM_CrossEntropyTokensForward(benchmark::State& state) {
  auto [x, t] = token_inputs(state.range(0));
  bench::time_forward(state, [&] { return token_loss(x, t, state.range(0)); });
  bench::label_shape(state, x.shape());
}
void BM_CrossEntropyTokensBackward(benchmark::State& state) {
  auto [x, t] = token_inputs(state.range(0));
  bench::time_backward(state, [&] { return token_loss(x, t, state.range(0)); }, Tensor(), {&x});
  bench::label_shape(state, x.shape());
}
BENCHMARK(BM_CrossEntropyTokensForward)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CrossEntropyTokensBackward)->Arg(0)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMicrosecond);

#define SHAPES Arg(0)->Arg(1)->Arg(2)  // [32,10], [256,10], [256,1000]
BENCHMARK(BM_SoftmaxForward)->SHAPES->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SoftmaxBackward)->SHAPES->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LogSoftmaxForward)->SHAPES->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LogSoftmaxBackward)->SHAPES->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CrossEntropyForward)->SHAPES->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CrossEntropyBackward)->SHAPES->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CompositeCrossEntropyForward)->SHAPES->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CompositeCrossEntropyBackward)->SHAPES->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
