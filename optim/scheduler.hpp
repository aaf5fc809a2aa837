#pragma once
/// \file scheduler.hpp
/// Learning-rate schedulers. Epoch-based ones compute each group's rate in closed form from its
/// base rate (the rate when the scheduler was made) and the epoch e, and write it into the
/// optimizer on construction (e = 0) and on every step(). ReduceLROnPlateau reacts to a metric.
#include <vector>

#include "optim/optimizer.hpp"

namespace tapegrad::optim {

/// Base of the epoch-based schedulers: a subclass defines the rate at epoch e (lr_at) and the base
/// class writes it into every group of the optimizer.
class LRScheduler {
 public:
  virtual ~LRScheduler();
  /// Advances one epoch and updates the optimizer's learning rates. Every group's new rate is
  /// computed first: when one is not finite and >= 0 (a gamma that overflows), it throws
  /// std::invalid_argument naming the scheduler, the group, the epoch and the rate, and neither the
  /// epoch nor any rate changes.
  void step();
  /// Epochs stepped so far (0 right after construction).
  int64_t last_epoch() const { return epoch_; }
  /// The current learning rate of every group.
  std::vector<double> last_lr() const;
  /// "last_epoch" (0-d) and "base_lrs" ([groups]), float64: what a resumed run needs.
  NamedTensors state_dict() const;
  /// Restores a state_dict of a scheduler over an optimizer with as many groups and re-applies the
  /// rate of that epoch; throws std::invalid_argument (nothing changed) when it does not fit.
  void load_state_dict(const NamedTensors& state);

 protected:
  /// Takes each group's current rate as its base rate; the optimizer must outlive the scheduler.
  /// `name` ("StepLR", ...) starts every error message.
  explicit LRScheduler(Optimizer& optimizer, const char* name = "LRScheduler");
  /// The rate at epoch e for a group whose base rate is `base`.
  virtual double lr_at(double base, int64_t e) const = 0;
  /// Writes lr_at(base, epoch) into every group (derived constructors call it once); checked as
  /// step() checks, before any group changes.
  void apply();

  Optimizer& optimizer_;           ///< the optimizer whose rates are set
  const char* name_;               ///< the scheduler's class, for errors
  std::vector<double> base_lrs_;   ///< each group's rate at construction
  int64_t epoch_ = 0;              ///< epochs stepped so far

 private:
  /// Every group's rate at epoch e from the base rates `base`, or std::invalid_argument
  /// "tapegrad::optim::<name>::<who>: ..." ("<name>: ..." for an empty `who`) when a base or a
  /// rate is not finite and >= 0.
  std::vector<double> checked_rates(const std::vector<double>& base, int64_t e, const char* who) const;
  /// Writes checked rates into the groups (set_group_lr accepts them all: no partial update).
  void set_rates(const std::vector<double>& rates);
};

/// lr = base · γ^⌊e / step_size⌋
class StepLR : public LRScheduler {
 public:
  /// Decays by `gamma` (finite, > 0) every `step_size` (> 0) epochs.
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(double base, int64_t e) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

/// lr = base · γ^(number of milestones ≤ e)
class MultiStepLR : public LRScheduler {
 public:
  /// Decays by `gamma` (finite, > 0) at each epoch in `milestones` (increasing).
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1);

 protected:
  double lr_at(double base, int64_t e) const override;

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

/// lr = base · γ^e
class ExponentialLR : public LRScheduler {
 public:
  /// Decays by `gamma` (finite, > 0) every epoch.
  ExponentialLR(Optimizer& optimizer, double gamma);

 protected:
  double lr_at(double base, int64_t e) const override;

 private:
  double gamma_;
};

/// lr = η_min + (base − η_min)·(1 + cos(π·e / T_max)) / 2   (SGDR without restarts)
class CosineAnnealingLR : public LRScheduler {
 public:
  /// Anneals from the base rate to `eta_min` (finite, >= 0) over `t_max` (> 0) epochs.
  CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double eta_min = 0.0);

 protected:
  double lr_at(double base, int64_t e) const override;

 private:
  int64_t t_max_;
  double eta_min_;
};

/// Linear warm-up (PyTorch's LinearLR): lr = base · (s + (f − s)·min(e, n) / n) with start factor s,
/// end factor f and n = total_iters; constant afterwards.
class LinearWarmupLR : public LRScheduler {
 public:
  /// Ramps the factor from `start_factor` to `end_factor` over `total_iters` epochs.
  LinearWarmupLR(Optimizer& optimizer, int64_t total_iters, double start_factor = 1.0 / 3.0, double end_factor = 1.0);

 protected:
  double lr_at(double base, int64_t e) const override;

 private:
  int64_t total_iters_;
  double start_, end_;
};

/// Multiplies the rates by `factor` when the metric has not improved for more than `patience`
/// steps (improved: below best·(1 − threshold) in min mode, above best·(1 + threshold) in max
/// mode), then waits `cooldown` steps; rates never go below min_lr.
class ReduceLROnPlateau {
 public:
  /// Whether a lower (min: a loss) or a higher (max: an accuracy) metric is an improvement.
  enum class Mode {
    min,  ///< lower is better (a loss)
    max,  ///< higher is better (an accuracy)
  };
  /// Watches `optimizer`'s rates; see the class comment for the arguments.
  explicit ReduceLROnPlateau(Optimizer& optimizer, Mode mode = Mode::min, double factor = 0.1, int64_t patience = 10,
                             double threshold = 1e-4, int64_t cooldown = 0, double min_lr = 0.0);
  /// Records one metric value (e.g. the validation loss) and lowers the rates if it stalled.
  void step(double metric);
  /// Steps since the metric last improved.
  int64_t num_bad_epochs() const { return bad_; }
  /// "best", "num_bad_epochs", "cooldown_left" (0-d float64); the rates live in the optimizer's state.
  NamedTensors state_dict() const;
  /// Restores state_dict(); throws std::invalid_argument (nothing changed) when an entry is missing or invalid.
  void load_state_dict(const NamedTensors& state);

 private:
  Optimizer& optimizer_;
  Mode mode_;
  double factor_, threshold_, min_lr_, best_;
  int64_t patience_, cooldown_, cooldown_left_ = 0, bad_ = 0;
};

}  // namespace tapegrad::optim
