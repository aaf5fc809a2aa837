// Activation checkpointing (autograd/checkpoint.hpp): what one training step (forward + loss +
// backward) holds and costs without and with recomputation, for
//   - a 32-layer MLP, 32 × (Linear(1024, 1024), ReLU) = 64 modules, batch 256, through
//     nn::checkpoint_sequential with 0 (plain forward), 6 (⌈√32⌉ layers) and 8 (√64 modules) segments;
//   - an 8-layer GPT (vocab 65, context 128, 4 heads, width 256, dropout 0.1, batch 8), plain and
//     with GPT::set_checkpointing(true) (every block a checkpoint: a block's input is far smaller
//     than its activations, so one checkpoint per block holds less than √n groups of blocks, for
//     the same one extra forward of the blocks).
// Counters (bytes from storage_stats(), which counts live tensor storage):
//   before_MB      live before the step: parameters, their gradients (kept between steps, as a
//                  training loop that zeroes them in place does), the batch;
//   peak_MB        the most live during the step (reset_peak_storage() at its start);
//   activation_MB  peak − before: the activations and transient gradients the step holds;
//   activation_ratio  activation_MB / that of the plain step of the same model (memory is
//                  deterministic: measured once per model).
// The engine hands leaves their gradients at the end of the backward (accumulator nodes run last),
// so activation_MB also holds one gradient per parameter (the MLP's 128 MB of weights: more than its
// activations); checkpointing cannot lower that part. Hence also
//   frozen_MB, frozen_ratio  the same measure for one step with the weights frozen (requires_grad
//                  off; the MLP's input, the GPT's token embedding still require grad, so the whole
//                  graph is recorded and every activation kept as in training): the activations alone.
// Time: the step's wall time (compare rows: checkpointed / plain; Chen et al. 2016 predict about
// one extra forward, ≤ 1.4×). On the shared machine run alternating and repeated:
//   build/bench/bench_checkpoint --benchmark_enable_random_interleaving=true --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
#include <cmath>
#include <map>
#include <optional>
#include <string>

#include "bench/bench_util.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;

namespace {

constexpr double kMB = 1024.0 * 1024.0;

struct Measured {
  double before = 0, peak = 0;
};

/// Runs `step` once with the storage counters around it.
Measured measure(const std::function<void()>& step) {
  Measured m;
  m.before = static_cast<double>(storage_stats().live_bytes);
  reset_peak_storage();
  step();
  m.peak = static_cast<double>(storage_stats().peak_live_bytes);
  return m;
}

/// Freezes every parameter of `model` but `keep` for its lifetime.
class Frozen {
 public:
  Frozen(const nn::Module& model, const Tensor& keep) {
    for (const Tensor& p : model.parameters())
      if (!p.is_same(keep) && p.requires_grad()) frozen_.push_back(p);
    for (Tensor& p : frozen_) p.requires_grad_(false);
  }
  ~Frozen() {
    for (Tensor& p : frozen_) p.requires_grad_(true);
  }

 private:
  std::vector<Tensor> frozen_;
};

/// A model's step, plain or checkpointed (`recompute`), with or without its weights frozen.
using Step = std::function<void(bool recompute, bool frozen)>;

/// Times the step per iteration and reports the memory counters against the plain step's.
void run(benchmark::State& state, const std::string& model, bool recompute, const Step& step) {
  struct Plain {
    double activation = 0, frozen = 0;
  };
  static std::map<std::string, Plain> plain;  // per model
  step(recompute, false);                     // warm-up: gradients allocated, caches filled
  if (!plain.count(model)) {
    step(false, false);
    const Measured p = measure([&] { step(false, false); });
    const Measured f = measure([&] { step(false, true); });
    plain[model] = {p.peak - p.before, f.peak - f.before};
  }
  const Measured frozen = measure([&] { step(recompute, true); });
  Measured m;
  for (auto _ : state) m = measure([&] { step(recompute, false); });
  const double activation = m.peak - m.before;
  state.counters["before_MB"] = m.before / kMB;
  state.counters["peak_MB"] = m.peak / kMB;
  state.counters["activation_MB"] = activation / kMB;
  state.counters["activation_ratio"] = activation / plain[model].activation;
  state.counters["frozen_MB"] = (frozen.peak - frozen.before) / kMB;
  state.counters["frozen_ratio"] = (frozen.peak - frozen.before) / plain[model].frozen;
  state.SetLabel(recompute ? "checkpointed" : "plain");
}

// ---- the 32-layer MLP -------------------------------------------------------------------------

struct Mlp {
  std::shared_ptr<nn::Sequential> model = std::make_shared<nn::Sequential>();
  Tensor x;
  Mlp() {
    manual_seed(0);
    for (int i = 0; i < 32; ++i) {
      model->push_back(std::make_shared<nn::Linear>(1024, 1024));
      model->push_back(std::make_shared<nn::ReLU>());
    }
    x = randn({256, 1024});
  }
  /// Forward, loss, backward; gradients accumulate into the buffers of earlier steps. Frozen: only
  /// the input requires grad.
  void step(int64_t segments, bool frozen) {
    std::optional<Frozen> freeze;
    if (frozen) freeze.emplace(*model, Tensor());
    Tensor in = frozen ? x.detach().requires_grad_() : x;
    Tensor y = segments == 0 ? model->forward(in) : nn::checkpoint_sequential(*model, segments, in);
    mean(y * y).backward();
  }
};

Mlp& mlp() {
  static Mlp m;
  return m;
}

void BM_CheckpointMlp32(benchmark::State& state) {
  const int64_t segments = state.range(0);
  run(state, "mlp", segments != 0, [&](bool recompute, bool frozen) { mlp().step(recompute ? segments : 0, frozen); });
  state.counters["segments"] = static_cast<double>(segments);
}
BENCHMARK(BM_CheckpointMlp32)->Arg(0)->Arg(6)->Arg(8)->Unit(benchmark::kMillisecond)->Iterations(2);

// ---- the 8-layer GPT --------------------------------------------------------------------------

struct Gpt {
  nn::GPT model{
      nn::GPTConfig{.vocab_size = 65, .block_size = 128, .n_layer = 8, .n_head = 4, .n_embd = 256, .dropout = 0.1}};
  Tensor idx, targets;
  Gpt() {
    Generator gen(1);
    std::vector<int64_t> tokens(8 * 129);
    for (auto& t : tokens) t = static_cast<int64_t>(gen.below(65));
    Tensor all = index_tensor(tokens, {8, 129});
    idx = slice(all, 1, 0, 128);
    targets = slice(all, 1, 1, 129);
  }
  /// Frozen: only the token embedding requires grad.
  void step(bool recompute, bool frozen) {
    std::optional<Frozen> freeze;
    if (frozen) freeze.emplace(model, model.wte->parameters()[0]);
    model.set_checkpointing(recompute);
    nn::GPT::loss(model.forward(idx), targets).backward();
  }
};

Gpt& gpt() {
  static Gpt g;
  return g;
}

void BM_CheckpointGpt8(benchmark::State& state) {
  const bool recompute = state.range(0) != 0;
  run(state, "gpt", recompute, [](bool r, bool frozen) { gpt().step(r, frozen); });
  state.counters["segments"] = recompute ? 8.0 : 0.0;
}
BENCHMARK(BM_CheckpointGpt8)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace
