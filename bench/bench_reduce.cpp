// Reductions, forward (recorded) and backward separately, at the shapes training meets: the bias
// gradient's column sum of [B,128] (and sum_to, which undoes a broadcast the same way), whole-tensor
// sum and mean (a loss), the row max and logsumexp of the logits [B,10], and the conv bias gradient's
// sum over N, H, W of [32,32,28,28].
#include "bench/bench_util.hpp"

using namespace tapegrad;
using bench::shape_of;

namespace {

void reduce_forward(benchmark::State& state, const std::function<Tensor(const Tensor&)>& op) {
  const Shape shape = shape_of(state.range(0));
  Tensor x = randn(shape).requires_grad_();
  bench::time_forward(state, [&] { return op(x); });
  bench::label_shape(state, shape);
  state.SetBytesProcessed(state.iterations() * x.numel() * int64_t(sizeof(float)));
}

void reduce_backward(benchmark::State& state, const std::function<Tensor(const Tensor&)>& op) {
  const Shape shape = shape_of(state.range(0));
  Tensor x = randn(shape).requires_grad_();
  Tensor g;
  {
    NoGradGuard no_grad;
    g = randn(op(x).shape());
  }
  bench::time_backward(state, [&] { return op(x); }, g, {&x});
  bench::label_shape(state, shape);
  state.SetBytesProcessed(state.iterations() * x.numel() * int64_t(sizeof(float)));
}

Tensor column_sum(const Tensor& x) { return sum(x, {0}); }                    // bias grad of a linear layer
Tensor row_sum(const Tensor& x) { return sum(x, {1}); }
Tensor total_sum(const Tensor& x) { return sum(x); }
Tensor total_mean(const Tensor& x) { return mean(x); }
Tensor row_max(const Tensor& x) { return tapegrad::max(x, {1}); }
Tensor row_logsumexp(const Tensor& x) { return logsumexp(x, {1}); }
Tensor channel_sum(const Tensor& x) { return sum(x, {0, 2, 3}); }           // bias grad of a conv layer
Tensor sum_to_row(const Tensor& x) { return sum_to(x, {x.shape().back()}); }  // broadcast undone

void BM_SumColumnsForward(benchmark::State& s) { reduce_forward(s, column_sum); }
void BM_SumColumnsBackward(benchmark::State& s) { reduce_backward(s, column_sum); }
void BM_SumRowsForward(benchmark::State& s) { reduce_forward(s, row_sum); }
void BM_SumRowsBackward(benchmark::State& s) { reduce_backward(s, row_sum); }
void BM_SumAllForward(benchmark::State& s) { reduce_forward(s, total_sum); }
void BM_SumAllBackward(benchmark::State& s) { reduce_backward(s, total_sum); }
void BM_MeanAllForward(benchmark::State& s) { reduce_forward(s, total_mean); }
void BM_MeanAllBackward(benchmark::State& s) { reduce_backward(s, total_mean); }
void BM_MaxRowsForward(benchmark::State& s) { reduce_forward(s, row_max); }
void BM_MaxRowsBackward(benchmark::State& s) { reduce_backward(s, row_max); }
void BM_LogSumExpRowsForward(benchmark::State& s) { reduce_forward(s, row_logsumexp); }
void BM_LogSumExpRowsBackward(benchmark::State& s) { reduce_backward(s, row_logsumexp); }
void BM_SumChannelsForward(benchmark::State& s) { reduce_forward(s, channel_sum); }
void BM_SumChannelsBackward(benchmark::State& s) { reduce_backward(s, channel_sum); }
void BM_SumToForward(benchmark::State& s) { reduce_forward(s, sum_to_row); }
void BM_SumToBackward(benchmark::State& s) { reduce_backward(s, sum_to_row); }

#define FWD(name, shapes) BENCHMARK(name##Forward)->shapes->Unit(benchmark::kMicrosecond)
#define BWD(name, shapes) BENCHMARK(name##Backward)->shapes->UseManualTime()->Unit(benchmark::kMicrosecond)
#define HIDDEN Arg(0)->Arg(1)  // [32,128], [256,128]
#define LOGITS Arg(2)->Arg(3)  // [32,10], [256,10]
FWD(BM_SumColumns, HIDDEN);
BWD(BM_SumColumns, HIDDEN);
FWD(BM_SumRows, HIDDEN);
BWD(BM_SumRows, HIDDEN);
FWD(BM_SumTo, HIDDEN);
BWD(BM_SumTo, HIDDEN);
FWD(BM_SumAll, HIDDEN->Arg(4));
BWD(BM_SumAll, HIDDEN->Arg(4));
FWD(BM_MeanAll, LOGITS);
BWD(BM_MeanAll, LOGITS);
FWD(BM_MaxRows, LOGITS);
BWD(BM_MaxRows, LOGITS);
FWD(BM_LogSumExpRows, LOGITS);
BWD(BM_LogSumExpRows, LOGITS);
FWD(BM_SumChannels, Arg(4)->Arg(5));
BWD(BM_SumChannels, Arg(4)->Arg(5));

}  // namespace
