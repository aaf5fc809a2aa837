// nn and optim hot spots at MNIST shapes: Linear and Conv2d forward and backward, separately and
// together, max pooling, the seed MLP's and small CNN's training steps, and one Adam step over the
// seed MLP's 101,770 parameters; layer_norm and attention at the char-GPT's shapes.
#include <benchmark/benchmark.h>

#include "autograd/autograd.hpp"
#include "bench/bench_util.hpp"
#include "nn/conv_winograd.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;

// ---- Linear at the seed MLP's first layer (784 → 128), batch 32 and 256 ----

static void BM_LinearForward(benchmark::State& state) {
  nn::Linear fc(784, 128);
  Tensor x = randn({state.range(0), 784});
  bench::time_forward(state, [&] { return fc(x); });
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_LinearForward)->Arg(32)->Arg(256);

/// Weight and bias gradients (the input is data, as in the seed MLP's first layer).
static void BM_LinearBackward(benchmark::State& state) {
  nn::Linear fc(784, 128);
  Tensor x = randn({state.range(0), 784});
  Tensor grad = randn({state.range(0), 128});
  bench::time_backward(state, [&] { return fc(x); }, grad, {&fc.weight, &fc.bias});
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_LinearBackward)->Arg(32)->Arg(256)->UseManualTime();

static void BM_LinearForwardBackward(benchmark::State& state) {
  const int64_t batch = state.range(0);
  nn::Linear fc(784, 128);
  Tensor x = randn({batch, 784});
  for (auto _ : state) {
    Tensor y = fc(x).sum();
    y.backward();
    fc.zero_grad();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_LinearForwardBackward)->Arg(32)->Arg(128)->Arg(512);

// ---- Conv2d at the small CNN's two layers, batch 32: range(0) = 0 for conv1 (1 → 32 channels,
// 28×28, its input is data), 1 for conv2 (32 → 64 channels, 14×14, input gradient too) ----

struct ConvLayer {
  nn::Conv2d conv;
  Tensor x;
  explicit ConvLayer(int64_t which)
      : conv(which == 0 ? nn::Conv2dOptions(1, 32, 3).padding(1) : nn::Conv2dOptions(32, 64, 3).padding(1)),
        x(which == 0 ? randn({32, 1, 28, 28}) : randn({32, 32, 14, 14}).requires_grad_()) {}
};

static void BM_Conv2dForward(benchmark::State& state) {
  ConvLayer l(state.range(0));
  bench::time_forward(state, [&] { return l.conv(l.x); });
  state.SetLabel(to_string(l.x.shape()));
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_Conv2dForward)->Arg(0)->Arg(1);

static void BM_Conv2dBackward(benchmark::State& state) {
  ConvLayer l(state.range(0));
  Tensor grad;
  {
    NoGradGuard no_grad;
    grad = randn(l.conv(l.x).shape());
  }
  bench::time_backward(state, [&] { return l.conv(l.x); }, grad, {&l.conv.weight, &l.conv.bias, &l.x});
  state.SetLabel(to_string(l.x.shape()));
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_Conv2dBackward)->Arg(0)->Arg(1)->UseManualTime();

static void BM_Conv2dForwardBackward(benchmark::State& state) {
  const int64_t batch = state.range(0);
  nn::Conv2d conv(nn::Conv2dOptions(1, 32, 3).padding(1));
  Tensor x = randn({batch, 1, 28, 28});
  for (auto _ : state) {
    Tensor y = conv(x).sum();
    y.backward();
    conv.zero_grad();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_Conv2dForwardBackward)->Arg(32)->Arg(128);

/// One Adam training step of `model` on a fixed batch of state.range(0) images per iteration.
static void train_steps(benchmark::State& state, nn::UnaryModule& model) {
  optim::Adam opt(model.parameters());
  Tensor x = rand({state.range(0), 1, 28, 28});
  std::vector<int64_t> labels(static_cast<size_t>(state.range(0)));
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 10);
  Tensor t = index_tensor(labels);
  for (auto _ : state) {
    opt.zero_grad();
    Tensor loss = F::cross_entropy(model(x), t);
    loss.backward();
    opt.step();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

static void BM_SeedMlpTrainStep(benchmark::State& state) {
  nn::Sequential model(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
  train_steps(state, model);
}
BENCHMARK(BM_SeedMlpTrainStep)->Arg(32)->Arg(128);

static void BM_AdamStepSeedMlp(benchmark::State& state) {
  auto model = std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
  auto params = model->parameters();
  for (auto& p : params) p.set_grad(randn(p.shape()));
  optim::Adam opt(params);
  for (auto _ : state) opt.step();
  state.SetItemsProcessed(state.iterations() * 101770);
}
BENCHMARK(BM_AdamStepSeedMlp);

// ---- the small CNN of examples/mnist_cnn.cpp: pooling alone and one whole training step ----

static void BM_MaxPool2dForwardBackward(benchmark::State& state) {
  Tensor x = randn({32, state.range(0), 28, 28}).requires_grad_();
  for (auto _ : state) {
    Tensor y = F::max_pool2d(x, 2).sum();
    y.backward();
    x.zero_grad();
  }
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_MaxPool2dForwardBackward)->Arg(32);

static void BM_MaxPool2dForward(benchmark::State& state) {
  Tensor x = randn({32, state.range(0), 28, 28}).requires_grad_();
  bench::time_forward(state, [&] { return F::max_pool2d(x, 2); });
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_MaxPool2dForward)->Arg(32);

static void BM_MaxPool2dBackward(benchmark::State& state) {
  Tensor x = randn({32, state.range(0), 28, 28}).requires_grad_();
  Tensor grad = randn({32, state.range(0), 14, 14});
  bench::time_backward(state, [&] { return F::max_pool2d(x, 2); }, grad, {&x});
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_MaxPool2dBackward)->Arg(32)->UseManualTime();

static void BM_SmallCnnTrainStep(benchmark::State& state) {
  nn::Sequential model(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::ReLU(), nn::MaxPool2d(2),
                       nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(64 * 7 * 7, 128), nn::ReLU(), nn::Linear(128, 10));
  train_steps(state, model);
}
BENCHMARK(BM_SmallCnnTrainStep)->Arg(32);

// ---- layer_norm, float32, affine: [768, 128] (the char-GPT's 12·64 rows of 128, range(0) = 0) and
// [256, 1024] (1). Forward alone, and forward + backward into the input, weight and bias ----

struct LayerNormInputs {
  Tensor x, weight, bias, grad;
  explicit LayerNormInputs(const benchmark::State& state)
      : x(randn(state.range(0) == 0 ? Shape{768, 128} : Shape{256, 1024}).requires_grad_()),
        weight(randn({x.size(1)}).requires_grad_()),
        bias(randn({x.size(1)}).requires_grad_()),
        grad(randn(x.shape())) {}
  Tensor operator()() const { return F::layer_norm(x, {x.size(1)}, weight, bias); }
};

static void BM_LayerNormForward(benchmark::State& state) {
  LayerNormInputs in(state);
  bench::time_forward(state, [&] { return in(); });
  state.SetLabel(to_string(in.x.shape()));
}
BENCHMARK(BM_LayerNormForward)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

static void BM_LayerNormForwardBackward(benchmark::State& state) {
  LayerNormInputs in(state);
  for (auto _ : state) {
    in().backward(in.grad);
    for (Tensor* t : {&in.x, &in.weight, &in.bias}) t->zero_grad();
  }
  state.SetLabel(to_string(in.x.shape()));
}
BENCHMARK(BM_LayerNormForwardBackward)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// ---- scaled dot-product attention, float32: the fused op (range(1) = 1) against the composite
// attention_reference (0) at [B, H, T, d] = [12, 4, 64, 32] (the char-GPT's shape), [8, 8, 256, 64]
// and [1, 4, 1024, 32] (range(0) = 0, 1, 2). The counter saved_bytes is what the graph keeps after
// forward beyond the output (live storage bytes): one log-sum-exp per row against the T×T weights ----

static Shape attention_shape(int64_t index) {
  switch (index) {
    case 0: return {12, 4, 64, 32};
    case 1: return {8, 8, 256, 64};
    default: return {1, 4, 1024, 32};
  }
}

struct AttentionInputs {
  Tensor q, k, v;
  bool fused;
  F::AttentionOptions options;
  explicit AttentionInputs(const benchmark::State& state)
      : q(randn(attention_shape(state.range(0))).requires_grad_()),
        k(randn(attention_shape(state.range(0))).requires_grad_()),
        v(randn(attention_shape(state.range(0))).requires_grad_()),
        fused(state.range(1) == 1),
        options(F::AttentionOptions().causal(state.range(2) == 1)) {
    if (state.range(3) > 0) options.tiles(state.range(3), state.range(4));
  }
  Tensor operator()() const {
    return fused ? F::scaled_dot_product_attention(q, k, v, options) : F::attention_reference(q, k, v, options);
  }
  void zero_grad() {
    q.zero_grad();
    k.zero_grad();
    v.zero_grad();
  }
  /// Live bytes the graph of one forward keeps beyond its output.
  double saved_bytes() const {
    const int64_t before = storage_stats().live_bytes;
    Tensor out = (*this)();
    return static_cast<double>(storage_stats().live_bytes - before - out.numel() * 4);
  }
};

static void label_attention(benchmark::State& state, const AttentionInputs& in) {
  state.SetLabel(std::string(in.fused ? "fused " : "composite ") + to_string(in.q.shape()) +
                 (state.range(2) == 1 ? " causal" : ""));
  state.counters["saved_bytes"] = in.saved_bytes();
}

static void BM_AttentionForward(benchmark::State& state) {
  AttentionInputs in(state);
  bench::time_forward(state, [&] { return in(); });
  label_attention(state, in);
}

static void BM_AttentionForwardBackward(benchmark::State& state) {
  AttentionInputs in(state);
  Tensor grad = randn(in.q.shape());
  for (auto _ : state) {
    in().backward(grad);
    in.zero_grad();
  }
  label_attention(state, in);
}

// args: shape, fused, causal, query tile, key tile (0: the default tiles)
static void attention_args(benchmark::internal::Benchmark* b) {
  for (int64_t shape : {0, 1, 2})
    for (int64_t fused : {1, 0}) b->Args({shape, fused, 0, 0, 0});
  b->Args({2, 1, 1, 0, 0})->Args({2, 0, 1, 0, 0});  // causal at T = 1024
}
BENCHMARK(BM_AttentionForward)->Apply(attention_args)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AttentionForwardBackward)->Apply(attention_args)->Unit(benchmark::kMicrosecond);

/// How the default tiles were chosen: forward + backward of the fused op over query × key tiles.
static void BM_AttentionTiles(benchmark::State& state) { BM_AttentionForwardBackward(state); }
BENCHMARK(BM_AttentionTiles)
    ->ArgsProduct({{1, 2}, {1}, {0}, {32, 64, 128}, {64, 128, 256}})
    ->Unit(benchmark::kMicrosecond);

/// Causal self-attention forward + backward from a packed projection qkv [12, 64, 3·128] (the baby
/// GPT's block, 4 heads): arg 0 = 1 for qkv_packed_attention (q, k, v read in place), 0 for the
/// heads split out with reshape/permute/slice, scaled_dot_product_attention, and merged back (the
/// path MultiheadAttention took before the packed op).
static void BM_SelfAttentionLayout(benchmark::State& state) {
  const bool packed = state.range(0) == 1;
  const int64_t n = 12, t = 64, h = 4, d = 32, e = h * d;
  Generator gen(1);
  Tensor qkv = randn({n, t, 3 * e}, DType::f32, gen).requires_grad_();
  Tensor grad = randn({n, t, e}, DType::f32, gen);
  const auto o = F::AttentionOptions().causal(true);
  auto forward = [&] {
    if (packed) return F::qkv_packed_attention(qkv, h, o);
    Tensor x = permute(reshape(qkv, {n, t, 3, h, d}), {2, 0, 3, 1, 4});
    auto part = [&](int64_t i) { return reshape(slice(x, 0, i, i + 1), {n, h, t, d}); };
    Tensor out = F::scaled_dot_product_attention(part(0), part(1), part(2), o);
    return reshape(permute(out, {0, 2, 1, 3}), {n, t, e});
  };
  for (auto _ : state) {
    forward().backward(grad);
    qkv.zero_grad();
  }
  state.SetLabel(packed ? "qkv_packed_attention [12, 64, 384], 4 heads, causal"
                        : "split heads + scaled_dot_product_attention + merge, causal");
}
BENCHMARK(BM_SelfAttentionLayout)->Arg(1)->Arg(0)->Unit(benchmark::kMicrosecond);

// ---- the char-GPT's causal self-attention over query × key tiles (GPT rows) ----

/// qkv_packed_attention forward + backward at the baby GPT's [12, T, 3·128], 4 heads, causal, T =
/// range(2) (64: the GPT's context), with query tile range(0) × key tile range(1) rows. At T = 64
/// one 64 × 64 tile per head has its upper half masked; 32-row tiles skip the tile above the
/// diagonal (nn/transformer.cpp's fused_options picks them for causal self-attention up to T = 128).
static void BM_GptAttentionTiles(benchmark::State& state) {
  const int64_t n = 12, t = state.range(2), h = 4, e = 128;
  Generator gen(1);
  Tensor qkv = randn({n, t, 3 * e}, DType::f32, gen).requires_grad_();
  Tensor grad = randn({n, t, e}, DType::f32, gen);
  const auto o = F::AttentionOptions().causal(true).tiles(state.range(0), state.range(1));
  for (auto _ : state) {
    F::qkv_packed_attention(qkv, h, o).backward(grad);
    qkv.zero_grad();
  }
  state.SetLabel("T " + std::to_string(t) + ", tiles " + std::to_string(state.range(0)) + " x " +
                 std::to_string(state.range(1)));
}
BENCHMARK(BM_GptAttentionTiles)
    ->ArgsProduct({{16, 32, 64}, {16, 32, 64}, {64}})
    ->ArgsProduct({{32, 64, 128}, {32, 64, 128}, {128}})
    ->Unit(benchmark::kMicrosecond);

// ---- Conv2d algorithms (nn/conv_winograd.hpp) at the small CNN's layers, batch 32: range(0) is
// the layer as in ConvLayer, range(1) the algorithm, forced: 0 im2col, 1 winograd (under auto,
// conv1's 1 → 32 channels runs im2col and conv2's 32 → 64 winograd) ----

static void BM_Conv2dAlgorithmForward(benchmark::State& state) {
  ConvLayer l(state.range(0));
  const bool winograd = state.range(1) == 1;
  nn::ConvAlgorithmGuard guard(winograd ? nn::ConvAlgorithm::winograd : nn::ConvAlgorithm::im2col);
  bench::time_forward(state, [&] { return l.conv(l.x); });
  state.SetLabel(to_string(l.x.shape()) + (winograd ? " winograd" : " im2col"));
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_Conv2dAlgorithmForward)->ArgsProduct({{0, 1}, {0, 1}})->Unit(benchmark::kMicrosecond);

/// Input (conv2 only), weight and bias gradients, as BM_Conv2dBackward.
static void BM_Conv2dAlgorithmBackward(benchmark::State& state) {
  ConvLayer l(state.range(0));
  const bool winograd = state.range(1) == 1;
  nn::ConvAlgorithmGuard guard(winograd ? nn::ConvAlgorithm::winograd : nn::ConvAlgorithm::im2col);
  Tensor grad;
  {
    NoGradGuard no_grad;
    grad = randn(l.conv(l.x).shape());
  }
  bench::time_backward(state, [&] { return l.conv(l.x); }, grad, {&l.conv.weight, &l.conv.bias, &l.x});
  state.SetLabel(to_string(l.x.shape()) + (winograd ? " winograd" : " im2col"));
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_Conv2dAlgorithmBackward)->ArgsProduct({{0, 1}, {0, 1}})->UseManualTime()->Unit(benchmark::kMicrosecond);

/// Forward + backward (input, weight and bias gradients) of a 3×3, padding 1 convolution of
/// range(0) → range(0) channels over [32, range(0), 14, 14], range(1) as above: where the
/// automatic rule's channel threshold (nn::kWinogradMinChannels) comes from.
static void BM_Conv2dAlgorithmChannels(benchmark::State& state) {
  const int64_t c = state.range(0);
  const bool winograd = state.range(1) == 1;
  nn::ConvAlgorithmGuard guard(winograd ? nn::ConvAlgorithm::winograd : nn::ConvAlgorithm::im2col);
  nn::Conv2d conv(nn::Conv2dOptions(c, c, 3).padding(1));
  Tensor x = randn({32, c, 14, 14}).requires_grad_();
  for (auto _ : state) {
    conv(x).sum().backward();
    conv.zero_grad();
    x.zero_grad();
  }
  state.SetLabel(std::to_string(c) + " -> " + std::to_string(c) + (winograd ? " winograd" : " im2col"));
}
BENCHMARK(BM_Conv2dAlgorithmChannels)->ArgsProduct({{2, 4, 8, 16}, {0, 1}})->Unit(benchmark::kMicrosecond);
