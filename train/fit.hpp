#pragma once
/// \file fit.hpp
/// A Keras-like training loop: fit, evaluate, predict, and callbacks.
///
///     auto history = train::fit(model, optimizer, loss, train, {.epochs = 5, .batch_size = 32,
///                            .validation_split = 0.1, .callbacks = {early_stopping}});
///     auto result = train::evaluate(*model, loss, test);
///     std::cout << result.confusion->to_string();
///
/// The model is a nn::UnaryModule (one input: Sequential, every layer, a model with forward(x)).
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
#include "optim/scheduler.hpp"
#include "train/metrics.hpp"

namespace tapegrad::train {

struct RunState;

/// loss(outputs, targets) → a scalar tensor (the mean over the batch), e.g. functional::cross_entropy.
using LossFn = std::function<Tensor(const Tensor& outputs, const Tensor& targets)>;

/// The values of one epoch: "loss", "accuracy", "val_loss", "val_accuracy", ...
struct EpochLog {
  int64_t epoch = 0;      ///< 1-based
  double seconds = 0;     ///< wall time of the epoch (training and validation)
  int64_t steps = 0;      ///< optimizer steps in this epoch
  std::map<std::string, double> values{};
  bool has(const std::string& key) const { return values.count(key) != 0; }
  /// values.at(key), throwing std::invalid_argument that lists the available keys.
  double get(const std::string& key) const;
};

/// What fit returns: one EpochLog per epoch run, and why training ended.
struct History {
  std::vector<EpochLog> epochs{};
  int64_t steps = 0;        ///< optimizer steps in all
  std::string stop_reason{};  ///< "completed" or the reason a callback gave
  std::vector<std::string> notes{};  ///< what callbacks reported at the end (e.g. restored weights)
  /// The values of `key` over the epochs (NaN where an epoch lacks it).
  std::vector<double> series(const std::string& key) const;
  /// {"epochs": [{"epoch": 1, "seconds": .., "loss": .., ...}], "steps": .., "stop_reason": .., "notes": [..]}
  std::string to_json(int indent = 2) const;
};

/// The state callbacks see and may change.
struct TrainState {
  nn::UnaryModule& model;
  optim::Optimizer& optimizer;
  int64_t epoch = 0;        ///< 1-based, the epoch running
  int64_t global_step = 0;  ///< optimizer steps so far
  bool stop = false;        ///< set (through request_stop) to end training after this batch
  std::string stop_reason{};
  void request_stop(const std::string& reason) {
    stop = true;
    stop_reason = reason;
  }
  /// A line for the user: fit prints it after training (unless quiet) and keeps it in History::notes.
  std::vector<std::string> notes{};
  void note(std::string line) { notes.push_back(std::move(line)); }
};

/// Hooks into fit. All do nothing by default.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(TrainState&) {}
  /// After each optimizer step, with that batch's loss.
  virtual void on_batch_end(TrainState&, double /*loss*/) {}
  virtual void on_epoch_end(TrainState&, const EpochLog&) {}
  virtual void on_train_end(TrainState&) {}
  /// For messages, e.g. "EarlyStopping".
  virtual const char* name() const { return "Callback"; }
  /// What a resumed run needs to continue as if uninterrupted (EarlyStopping's counters, a
  /// scheduler's epoch): fit saves it in run states after each epoch, as
  /// "callbacks.<i>.<name>.<key>", and hands it back through load_state_dict (after on_train_begin)
  /// when resuming; a resume whose callbacks differ (number, order or names) is refused before
  /// anything is loaded. load_state_dict throws std::invalid_argument on keys or values it does not
  /// accept, and load_state_dict(state_dict()) must restore the callback as it was (a failed resume
  /// rolls callbacks back this way). None by default.
  virtual nn::NamedTensors state_dict() const { return {}; }
  virtual void load_state_dict(const nn::NamedTensors& /*state*/) {}
};

/// Whether a monitored value improves by going down ("loss") or up ("accuracy"). `automatic`
/// picks max for names containing "acc", "precision", "recall" or "f1", min otherwise.
enum class Mode { automatic, min, max };

struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  int64_t patience = 0;     ///< epochs without improvement tolerated before stopping
  double min_delta = 0.0;   ///< an improvement must exceed this
  Mode mode = Mode::automatic;
  bool restore_best = false;  ///< on stop (or at the end), load the weights of the best epoch
};

/// Stops when `monitor` has not improved by more than min_delta for `patience` epochs.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  void on_train_begin(TrainState& s) override;
  void on_epoch_end(TrainState& s, const EpochLog& log) override;
  void on_train_end(TrainState& s) override;
  int64_t best_epoch() const { return best_epoch_; }
  double best_value() const { return best_; }
  const char* name() const override { return "EarlyStopping"; }
  /// "best", "best_epoch", "wait" and, with restore_best, the best epoch's weights as "weights.<name>".
  nn::NamedTensors state_dict() const override;
  void load_state_dict(const nn::NamedTensors& state) override;

 private:
  EarlyStoppingOptions options_;
  bool maximize_ = false;
  double best_ = 0;
  int64_t best_epoch_ = 0, wait_ = 0;
  nn::NamedTensors best_state_;
};

/// Stops when |monitor(epoch) − monitor(epoch − 1)| < tolerance: the loss has converged.
class ConvergenceStop : public Callback {
 public:
  explicit ConvergenceStop(double tolerance, std::string monitor = "loss");
  void on_train_begin(TrainState&) override { previous_.reset(); }
  void on_epoch_end(TrainState& s, const EpochLog& log) override;
  const char* name() const override { return "ConvergenceStop"; }
  nn::NamedTensors state_dict() const override;  ///< "previous" once an epoch has ended
  void load_state_dict(const nn::NamedTensors& state) override;

 private:
  double tolerance_;
  std::string monitor_;
  std::optional<double> previous_;
};

/// Stops after `max_steps` optimizer steps in all (mid-epoch if need be).
class MaxSteps : public Callback {
 public:
  explicit MaxSteps(int64_t max_steps);
  void on_batch_end(TrainState& s, double loss) override;
  const char* name() const override { return "MaxSteps"; }  ///< stateless: it reads the global step

 private:
  int64_t max_steps_;
};

/// Saves the weights (safetensors, nn::save) after each epoch to `path`, where "{epoch}" is replaced
/// by the epoch number; with save_best_only, only when `monitor` improves.
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::string path, std::string monitor = "val_loss", bool save_best_only = false,
                           Mode mode = Mode::automatic);
  void on_train_begin(TrainState&) override { best_.reset(); }
  void on_epoch_end(TrainState& s, const EpochLog& log) override;
  /// Paths written so far.
  const std::vector<std::string>& saved() const { return saved_; }
  const char* name() const override { return "ModelCheckpoint"; }
  nn::NamedTensors state_dict() const override;  ///< "best" once a value was seen (save_best_only)
  void load_state_dict(const nn::NamedTensors& state) override;

 private:
  std::string path_, monitor_;
  bool save_best_only_, maximize_;
  std::optional<double> best_;
  std::vector<std::string> saved_;
};

/// Steps a learning-rate scheduler at the end of every epoch: an epoch-based one (StepLR, cosine,
/// warm-up, ...) by one epoch, ReduceLROnPlateau with the epoch's `monitor` value. Its state goes
/// into run states, so a resumed run continues the schedule.
///
///     auto sched = std::make_shared<optim::CosineAnnealingLR>(opt, 10);
///     train::fit(model, opt, loss, data, {.epochs = 10, .callbacks = {std::make_shared<train::LearningRateScheduler>(sched)}});
class LearningRateScheduler : public Callback {
 public:
  explicit LearningRateScheduler(std::shared_ptr<optim::LRScheduler> scheduler);
  explicit LearningRateScheduler(std::shared_ptr<optim::ReduceLROnPlateau> plateau, std::string monitor = "val_loss");
  void on_epoch_end(TrainState& s, const EpochLog& log) override;
  const char* name() const override { return "LearningRateScheduler"; }
  nn::NamedTensors state_dict() const override;  ///< the scheduler's state_dict
  void load_state_dict(const nn::NamedTensors& state) override;

 private:
  std::shared_ptr<optim::LRScheduler> scheduler_;
  std::shared_ptr<optim::ReduceLROnPlateau> plateau_;
  std::string monitor_;
};

struct FitOptions {
  int64_t epochs = 1;
  int64_t batch_size = 32;
  bool shuffle = true;
  uint64_t seed = 0;                ///< shuffling and the validation split
  /// A random fraction of the training data held out for validation (Keras takes the last rows;
  /// tapegrad draws them with `seed`, since MNIST-format files may be sorted by class).
  double validation_split = 0.0;
  /// Explicit validation data (takes precedence over validation_split).
  std::shared_ptr<const datasets::Dataset> validation_data{};
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
Evaluation evaluate(nn::UnaryModule& model, const LossFn& loss, const datasets::Dataset& data, int64_t batch_size = 256);

/// The model's outputs for every sample of `data`, concatenated along dim 0.
Tensor predict(nn::UnaryModule& model, const datasets::Dataset& data, int64_t batch_size = 256);
/// The model's outputs for the rows of `x`, `batch_size` rows at a time, concatenated along dim 0.
Tensor predict(nn::UnaryModule& model, const Tensor& x, int64_t batch_size = 256);

}  // namespace tapegrad::train
