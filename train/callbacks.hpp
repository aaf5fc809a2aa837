#pragma once
/// \file callbacks.hpp
/// Hooks into train::fit: the Callback interface, the state callbacks see (TrainState), and the
/// built-in callbacks: EarlyStopping, ConvergenceStop, MaxSteps, ModelCheckpoint and
/// LearningRateScheduler.
///
///     auto stop = std::make_shared<train::EarlyStopping>(train::EarlyStoppingOptions{.patience = 3});
///     train::fit(model, opt, loss, data, {.epochs = 50, .validation_split = 0.1, .callbacks = {stop}});
///
/// A callback with state that a resumed run needs (counters, best values, a scheduler's epoch)
/// returns it from state_dict(); fit stores it in run states (train/run_state.hpp).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "optim/scheduler.hpp"
#include "train/history.hpp"

namespace tapegrad::train {

/// The state callbacks see and may change.
struct TrainState {
  nn::UnaryModule& model;       ///< the model being trained
  optim::Optimizer& optimizer;  ///< the optimizer stepping it
  int64_t epoch = 0;        ///< 1-based, the epoch running
  int64_t global_step = 0;  ///< optimizer steps so far
  bool stop = false;        ///< set (through request_stop) to end training after this batch
  std::string stop_reason{};  ///< why, for History::stop_reason and the closing line
  /// Ends training after the current batch, with `reason` as History::stop_reason.
  void request_stop(const std::string& reason) {
    stop = true;
    stop_reason = reason;
  }
  /// A line for the user: fit prints it after training (unless quiet) and keeps it in History::notes.
  std::vector<std::string> notes{};
  /// Adds a line to `notes`.
  void note(std::string line) { notes.push_back(std::move(line)); }
};

/// Hooks into fit. All do nothing by default.
class Callback {
 public:
  virtual ~Callback() = default;
  /// Before the first epoch (also when resuming, before the callback's state is loaded back).
  virtual void on_train_begin(TrainState&) {}
  /// After each optimizer step, with that batch's loss.
  virtual void on_batch_end(TrainState&, double /*loss*/) {}
  /// After each epoch (its validation included), with that epoch's log; before the run state is saved.
  virtual void on_epoch_end(TrainState&, const EpochLog&) {}
  /// After the last epoch, or after a stop.
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
  /// Restores what state_dict() returned (see there).
  virtual void load_state_dict(const nn::NamedTensors& /*state*/) {}
};

/// Whether a monitored value improves by going down ("loss") or up ("accuracy"). `automatic`
/// picks max for names containing "acc", "precision", "recall" or "f1", min otherwise.
enum class Mode {
  automatic,  ///< max for names containing "acc", "precision", "recall" or "f1", min otherwise
  min,        ///< lower is better (a loss)
  max,        ///< higher is better (an accuracy)
};

/// EarlyStopping's settings.
struct EarlyStoppingOptions {
  std::string monitor = "val_loss";  ///< the EpochLog value watched
  int64_t patience = 0;     ///< epochs without improvement tolerated before stopping
  double min_delta = 0.0;   ///< an improvement must exceed this
  Mode mode = Mode::automatic;  ///< whether lower or higher is better
  bool restore_best = false;  ///< on stop (or at the end), load the weights of the best epoch
};

/// Stops when `monitor` has not improved by more than min_delta for `patience` epochs.
class EarlyStopping : public Callback {
 public:
  /// Throws std::invalid_argument for patience < 0 or min_delta < 0.
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  void on_train_begin(TrainState& s) override;  ///< forgets the best value and weights
  /// Records an improvement (and the weights, with restore_best), or counts an epoch without one
  /// and requests a stop once `patience` (at least 1) have passed.
  void on_epoch_end(TrainState& s, const EpochLog& log) override;
  void on_train_end(TrainState& s) override;  ///< with restore_best, loads the best epoch's weights
  int64_t best_epoch() const { return best_epoch_; }  ///< the epoch of the best value (0: none yet)
  double best_value() const { return best_; }         ///< the best value of `monitor` so far
  const char* name() const override { return "EarlyStopping"; }
  /// "best", "best_epoch", "wait" and, with restore_best, the best epoch's weights as "weights.<name>".
  nn::NamedTensors state_dict() const override;
  void load_state_dict(const nn::NamedTensors& state) override;  ///< see Callback::load_state_dict

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
  /// Throws std::invalid_argument unless tolerance > 0.
  explicit ConvergenceStop(double tolerance, std::string monitor = "loss");
  void on_train_begin(TrainState&) override { previous_.reset(); }  ///< forgets the previous value
  /// Requests a stop when `monitor` moved by less than the tolerance since the previous epoch.
  void on_epoch_end(TrainState& s, const EpochLog& log) override;
  const char* name() const override { return "ConvergenceStop"; }
  nn::NamedTensors state_dict() const override;  ///< "previous" once an epoch has ended
  void load_state_dict(const nn::NamedTensors& state) override;  ///< see Callback::load_state_dict

 private:
  double tolerance_;
  std::string monitor_;
  std::optional<double> previous_;
};

/// Stops after `max_steps` optimizer steps in all (mid-epoch if need be).
class MaxSteps : public Callback {
 public:
  /// Throws std::invalid_argument unless max_steps > 0.
  explicit MaxSteps(int64_t max_steps);
  void on_batch_end(TrainState& s, double loss) override;  ///< requests a stop at step max_steps
  const char* name() const override { return "MaxSteps"; }  ///< stateless: it reads the global step

 private:
  int64_t max_steps_;
};

/// Saves the weights (safetensors, nn::save) after each epoch to `path`, where "{epoch}" is replaced
/// by the epoch number; with save_best_only, only when `monitor` improves.
class ModelCheckpoint : public Callback {
 public:
  /// Saves to `path` ("{epoch}" replaced); `monitor` and `mode` matter with save_best_only only.
  explicit ModelCheckpoint(std::string path, std::string monitor = "val_loss", bool save_best_only = false,
                           Mode mode = Mode::automatic);
  void on_train_begin(TrainState&) override { best_.reset(); }  ///< forgets the best value
  void on_epoch_end(TrainState& s, const EpochLog& log) override;  ///< saves (if it improved)
  /// Paths written so far.
  const std::vector<std::string>& saved() const { return saved_; }
  const char* name() const override { return "ModelCheckpoint"; }
  nn::NamedTensors state_dict() const override;  ///< "best" once a value was seen (save_best_only)
  void load_state_dict(const nn::NamedTensors& state) override;  ///< see Callback::load_state_dict

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
  /// Steps an epoch-based scheduler once per epoch; throws std::invalid_argument when it is null.
  explicit LearningRateScheduler(std::shared_ptr<optim::LRScheduler> scheduler);
  /// Steps ReduceLROnPlateau with the epoch's `monitor`; throws std::invalid_argument when it is null.
  explicit LearningRateScheduler(std::shared_ptr<optim::ReduceLROnPlateau> plateau, std::string monitor = "val_loss");
  void on_epoch_end(TrainState& s, const EpochLog& log) override;  ///< steps the scheduler
  const char* name() const override { return "LearningRateScheduler"; }
  nn::NamedTensors state_dict() const override;  ///< the scheduler's state_dict
  void load_state_dict(const nn::NamedTensors& state) override;  ///< the scheduler's load_state_dict

 private:
  std::shared_ptr<optim::LRScheduler> scheduler_;
  std::shared_ptr<optim::ReduceLROnPlateau> plateau_;
  std::string monitor_;
};

}  // namespace tapegrad::train
