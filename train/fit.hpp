#pragma once
/// \file fit.hpp
/// A Keras-like training loop: fit, evaluate and predict. Callbacks are in train/callbacks.hpp,
/// the progress bar and epoch lines in train/progress.hpp, run states (resumable training) in
/// train/run_state.hpp, metrics in train/metrics.hpp.
///
///     auto history = train::fit(model, optimizer, loss, data, {.epochs = 5, .batch_size = 32,
///                               .validation_split = 0.1, .callbacks = {early_stopping}});
///     auto result = train::evaluate(*model, loss, test);
///     std::cout << result.confusion->to_string();
///
/// The model is an nn::UnaryModule (one input: Sequential, every layer, a model with forward(x)).
/// Each epoch records "loss" (the sample-weighted mean of the batch losses) and, when the targets are
/// int64 class indices and the outputs scores — [N] with [N, C], or [N, T] with [N, T, C] for a
/// sequence model, where it is token accuracy — "accuracy"; with validation data also "val_loss",
/// "val_accuracy" and, for sequence targets, "val_perplexity" (computed in eval mode without
/// recording). Unless quiet, fit prints
/// one line per epoch, and a progress bar (batches, running loss, samples/s, ETA) while the epoch
/// runs when standard output is a terminal.
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datasets/dataset.hpp"
#include "nn/module.hpp"
#include "optim/optimizer.hpp"
#include "train/callbacks.hpp"
#include "train/history.hpp"
#include "train/metrics.hpp"

namespace tapegrad::train {

struct RunState;

/// loss(outputs, targets) → a scalar tensor (the mean over the batch), e.g. functional::cross_entropy.
using LossFn = std::function<Tensor(const Tensor& outputs, const Tensor& targets)>;

/// How fit trains: epochs, batches, validation, callbacks, output, run states.
struct FitOptions {
  int64_t epochs = 1;                ///< epochs to train (in all, counting a resumed run's)
  int64_t batch_size = 32;           ///< samples per optimizer step (the last batch may be smaller)
  bool shuffle = true;               ///< reshuffle the training data every epoch
  uint64_t seed = 0;                ///< shuffling and the validation split
  /// A random fraction of the training data held out for validation (Keras takes the last rows;
  /// tapegrad draws them with `seed`, since MNIST-format files may be sorted by class).
  double validation_split = 0.0;
  /// Explicit validation data (takes precedence over validation_split).
  std::shared_ptr<const datasets::Dataset> validation_data{};
  /// Called in this order at every hook (train/callbacks.hpp).
  std::vector<std::shared_ptr<Callback>> callbacks{};
  bool quiet = false;               ///< no epoch lines, no progress bar
  std::ostream* out = nullptr;      ///< where epoch lines go (std::cout when null)
  /// When set, the run's state (train/run_state.hpp) is written here atomically after every
  /// complete epoch, after the callbacks.
  std::string state_path{};
  /// Continues the run this run state describes: restores the model, the optimizer, the RNG states,
  /// the step count and the history, then trains epochs state.epoch + 1 .. epochs. With the
  /// same options, model and optimizer, the result is bitwise that of an uninterrupted run. All or
  /// nothing: a run state that does not fit or holds invalid values (an optimizer option the
  /// constructor would refuse, a negative step, a malformed generator state, a callback state the
  /// callback refuses) throws and leaves model, optimizer, schedulers, callbacks and generators as
  /// they were.
  std::shared_ptr<const RunState> resume{};
  /// Generators besides default_generator() that the run draws from (e.g. a Dropout built with its
  /// own Generator), by name: their states go into run states and come back on resume.
  std::map<std::string, Generator*> generators{};
  /// Data-parallel training over the processes of the MPI world (distributed/comm.hpp) when it has
  /// more than one (`mpirun -np N`); ignored in a world of one. Then:
  ///  - `model` must be a distributed::DistributedDataParallel, which averages the gradients over
  ///    the ranks during backward; any other model is refused (N replicas would silently train
  ///    apart);
  ///  - each rank reads its own shard of the training data (datasets::DistributedSampler: one
  ///    permutation drawn from `seed` and the epoch, the same on every rank, dealt round-robin;
  ///    padded by repeating samples so every rank runs the same number of steps). `batch_size` is
  ///    per rank: the optimizer step sees world_size × batch_size samples, as in PyTorch DDP;
  ///  - the epoch's loss and accuracy and the validation metrics are over all ranks (evaluate
  ///    splits the validation data between the ranks and reduces), and the batch loss handed to
  ///    callbacks is the ranks' mean, so every rank's callbacks take the same decisions;
  ///  - only rank 0 prints and writes run states (of the wrapped module, so a single process can
  ///    resume them); ModelCheckpoint writes on rank 0 only. Every rank loads `resume`.
  /// false: every rank trains on its own, on all the data (and `model` must not be a
  /// DistributedDataParallel).
  bool distributed = true;
};

/// Trains `model` on `data`: for each epoch, each batch runs forward, loss, backward, step.
/// Throws std::invalid_argument for epochs < 0, batch_size ≤ 0, a split outside [0, 1), or a
/// resume run state that does not fit the run (more epochs than `epochs`, a missing generator,
/// invalid state: see FitOptions::resume).
History fit(nn::UnaryModule& model, optim::Optimizer& optimizer, const LossFn& loss,
            std::shared_ptr<const datasets::Dataset> data, const FitOptions& options = {});

/// evaluate's result. Predictions are scored when the targets are int64 classes and the outputs
/// scores with one more (class) axis: [N] with [N, C] (one prediction per sample; `confusion` is
/// set), or [N, T] with [N, T, C] (one per token: a language model; `perplexity` is set).
struct Evaluation {
  double loss = 0;          ///< the sample-weighted mean of the batch losses
  int64_t samples = 0;      ///< samples evaluated
  int64_t predictions = 0;  ///< predictions scored: N for [N] targets, N·T for [N, T], 0 otherwise
  int64_t correct = 0;      ///< predictions equal to their target
  /// Counts of (true, predicted) classes, for [N] targets with [N, C] outputs.
  std::optional<ConfusionMatrix> confusion{};
  /// exp(mean token cross-entropy of the outputs as logits), for [N, T] targets with [N, T, C]
  /// outputs (see train::perplexity); with loss = cross_entropy, exp(loss).
  std::optional<double> perplexity{};
  /// correct / predictions (token accuracy for sequences); NaN when nothing was scored.
  double accuracy() const {
    return predictions > 0 ? static_cast<double>(correct) / static_cast<double>(predictions)
                           : std::numeric_limits<double>::quiet_NaN();
  }
};

/// Loss and metrics of `model` on `data`, in eval mode without recording (the mode is restored).
/// In an MPI world of more than one process (and with `across_ranks`), every rank must call it:
/// rank r evaluates the r-th of world_size contiguous parts of `data` and the sums (loss, counts,
/// the confusion matrix, token cross-entropy) are added over the ranks, so every rank returns the
/// evaluation of all of `data`. `across_ranks = false` evaluates all of `data` on this rank alone.
Evaluation evaluate(nn::UnaryModule& model, const LossFn& loss, const datasets::Dataset& data, int64_t batch_size = 256,
                    bool across_ranks = true);

/// The model's outputs for every sample of `data`, concatenated along dim 0 (on this rank alone,
/// in an MPI world too).
Tensor predict(nn::UnaryModule& model, const datasets::Dataset& data, int64_t batch_size = 256);
/// The model's outputs for the rows of `x`, `batch_size` rows at a time, concatenated along dim 0.
Tensor predict(nn::UnaryModule& model, const Tensor& x, int64_t batch_size = 256);

}  // namespace tapegrad::train
