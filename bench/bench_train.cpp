// One full training step of the seed MLP (Flatten → Linear(784,128) → ReLU → Linear(128,10), Adam 1e-3,
// cross-entropy) at batch 32 and 256, exactly as train::fit pays it: a shuffled batch gathered from an
// ImageDataset of 60,000 MNIST-sized byte images (what load_mnist returns), zero_grad, forward, loss, backward, optimizer step, loss.item()
// and the batch's predicted classes for the running accuracy. Then the same step split into its
// phases (batch gather, forward + loss, backward, Adam step) to show where the time goes, and the
// gather from a float32 TensorDataset of the same images for comparison.
// Counter epoch_seconds: the step's time × the ⌈60,000 / B⌉ steps of a Fashion-MNIST epoch, to set
// against `make bench-compare`. (One Adam step alone is bench_nn's BM_AdamStepSeedMlp.)
#include <cmath>

#include "autograd/cpu.hpp"
#include "bench/bench_util.hpp"
#include "datasets/datasets.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"
#include "train/metrics.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;

namespace {
// The OpenBLAS kernel family tapegrad selected (autograd/blas.cpp), in the output's context:
// make bench-compare reads it to give libtorch, PyTorch and the GEMM floor the same kernels.
const bool kBlasContext = [] {
  benchmark::AddCustomContext("blas_core", blas_core_name());
  benchmark::AddCustomContext("kernel_isa", isa_name(kernel_isa()));  // tapegrad's own vectorised kernels
  return true;
}();

constexpr int64_t kTrainImages = 60000;
constexpr int64_t kPoolImages = 60000;  // random images to draw batches from: as many as the real set

/// One pool of random byte images with labels, made once and shared by every benchmark (47 MB).
std::shared_ptr<datasets::ImageDataset> byte_pool() {
  static auto images = [] {
    std::vector<uint8_t> px(static_cast<size_t>(kPoolImages) * 784);
    Generator gen(1);
    for (auto& p : px) p = static_cast<uint8_t>(gen.below(256));
    std::vector<int64_t> labels(static_cast<size_t>(kPoolImages));
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>((i * 7919) % 10);
    return std::make_shared<datasets::ImageDataset>(px, Shape{1, 28, 28}, index_tensor(labels));
  }();
  return images;
}

struct SeedMlp {
  std::shared_ptr<nn::Sequential> model =
      std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
  optim::Adam optimizer{model->parameters(), optim::AdamOptions(1e-3)};
  datasets::DataLoader loader;
  int64_t next = 0;

  explicit SeedMlp(int64_t batch, std::shared_ptr<const datasets::Dataset> data = byte_pool())
      : loader(std::move(data), {.batch_size = batch, .shuffle = true, .seed = 1}) {
    loader.reset();
  }
  /// The next batch of the pass, starting a new pass (new order) at the end.
  datasets::Batch batch() {
    if (next == loader.num_batches()) {
      loader.reset();
      next = 0;
    }
    return loader.batch(next++);
  }
  Tensor loss(const datasets::Batch& b) { return F::cross_entropy((*model)(b.x), b.y); }
};

void set_counters(benchmark::State& state, int64_t batch) {
  const double steps_per_epoch = std::ceil(static_cast<double>(kTrainImages) / static_cast<double>(batch));
  state.counters["epoch_seconds"] = benchmark::Counter(static_cast<double>(state.iterations()) / steps_per_epoch,
                                                       benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(state.iterations() * batch);
}

/// train::fit's loop body, whole.
void BM_SeedMlpFitStep(benchmark::State& state) {
  const int64_t b = state.range(0);
  SeedMlp m(b);
  int64_t correct = 0;
  double loss_sum = 0;
  for (auto _ : state) {
    datasets::Batch batch = m.batch();
    m.optimizer.zero_grad();
    Tensor outputs = (*m.model)(batch.x);
    Tensor loss = F::cross_entropy(outputs, batch.y);
    loss.backward();
    m.optimizer.step();
    loss_sum += loss.item() * static_cast<double>(batch.size());
    auto pred = train::predicted_classes(outputs);
    const int64_t* t = batch.y.data<int64_t>();
    for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == t[i];
  }
  benchmark::DoNotOptimize(correct);
  benchmark::DoNotOptimize(loss_sum);
  set_counters(state, b);
}
BENCHMARK(BM_SeedMlpFitStep)->Arg(32)->Arg(256)->Unit(benchmark::kMicrosecond);

/// Phase 1: the shuffled batch gather (DataLoader::batch → index_select of 784-float rows).
void BM_SeedMlpPhaseBatch(benchmark::State& state) {
  const int64_t b = state.range(0);
  SeedMlp m(b);
  for (auto _ : state) {
    datasets::Batch batch = m.batch();
    benchmark::DoNotOptimize(batch.x.impl().get());
  }
  set_counters(state, b);
}
BENCHMARK(BM_SeedMlpPhaseBatch)->Arg(32)->Arg(256)->Unit(benchmark::kMicrosecond);

/// Phase 1 as it was before ImageDataset: the same images as a float32 TensorDataset (188 MB), whose
/// shuffled batch is an index_select of 3,136-byte rows.
void BM_SeedMlpPhaseBatchFloat32(benchmark::State& state) {
  const int64_t b = state.range(0);
  static auto floats = std::make_shared<datasets::TensorDataset>(byte_pool()->images(), byte_pool()->labels());
  SeedMlp m(b, floats);
  for (auto _ : state) {
    datasets::Batch batch = m.batch();
    benchmark::DoNotOptimize(batch.x.impl().get());
  }
  set_counters(state, b);
}
BENCHMARK(BM_SeedMlpPhaseBatchFloat32)->Arg(32)->Arg(256)->Unit(benchmark::kMicrosecond);

/// Phase 2: forward + loss, recorded (the graph is freed in the loop, as in training).
void BM_SeedMlpPhaseForward(benchmark::State& state) {
  const int64_t b = state.range(0);
  SeedMlp m(b);
  datasets::Batch batch = m.batch();
  for (auto _ : state) {
    Tensor loss = m.loss(batch);
    benchmark::DoNotOptimize(loss.impl().get());
  }
  set_counters(state, b);
}
BENCHMARK(BM_SeedMlpPhaseForward)->Arg(32)->Arg(256)->Unit(benchmark::kMicrosecond);

/// Phase 3: loss.backward() alone (gradients accumulate into cleared .grad).
void BM_SeedMlpPhaseBackward(benchmark::State& state) {
  const int64_t b = state.range(0);
  SeedMlp m(b);
  datasets::Batch batch = m.batch();
  auto params = m.model->parameters();
  for (auto _ : state) {
    Tensor loss = m.loss(batch);
    const auto t0 = std::chrono::steady_clock::now();
    loss.backward();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    for (auto& p : params) p.zero_grad();
  }
  set_counters(state, b);
}
BENCHMARK(BM_SeedMlpPhaseBackward)->Arg(32)->Arg(256)->UseManualTime()->Unit(benchmark::kMicrosecond);

/// Phase 4: zero_grad + Adam step over the 101,770 parameters (the same at any batch size).
void BM_SeedMlpPhaseOptimizer(benchmark::State& state) {
  const int64_t b = state.range(0);
  SeedMlp m(b);
  Tensor loss = m.loss(m.batch());
  loss.backward();
  std::vector<Tensor> grads;
  for (auto& p : m.model->parameters()) grads.push_back(p.grad());
  auto params = m.model->parameters();
  for (auto _ : state) {
    m.optimizer.zero_grad();
    for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(grads[i]);
    m.optimizer.step();
  }
  set_counters(state, b);
}
BENCHMARK(BM_SeedMlpPhaseOptimizer)->Arg(32)->Arg(256)->Unit(benchmark::kMicrosecond);

}  // namespace
