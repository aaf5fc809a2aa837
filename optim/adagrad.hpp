#pragma once
/// \file adagrad.hpp
/// Adagrad (PyTorch 1.13's algorithm).
#include "optim/optimizer.hpp"

namespace tapegrad::optim {

/// Adagrad's options, chainable: `AdagradOptions(0.1).lr_decay(1e-4)`.
struct AdagradOptions {
  /// Options with learning rate `lr` and PyTorch's other defaults.
  explicit AdagradOptions(double lr = 1e-2) : lr_(lr) {}
  /// Learning rate, >= 0.
  TAPEGRAD_OPTION(double, lr, 1e-2);
  /// The rate at step t is lr / (1 + (t − 1)·lr_decay).
  TAPEGRAD_OPTION(double, lr_decay, 0.0);
  /// λ: λ·p is added to the gradient (L2 penalty).
  TAPEGRAD_OPTION(double, weight_decay, 0.0);
  /// Starting value of the sum of squared gradients s.
  TAPEGRAD_OPTION(double, initial_accumulator_value, 0.0);
  /// ε added to √s in the denominator.
  TAPEGRAD_OPTION(double, eps, 1e-10);

 public:
  /// The options by name, for state dicts.
  std::vector<OptionField> fields() {
    return {{"lr", &lr_, nullptr}, {"lr_decay", &lr_decay_, nullptr}, {"weight_decay", &weight_decay_, nullptr},
            {"initial_accumulator_value", &initial_accumulator_value_, nullptr}, {"eps", &eps_, nullptr}};
  }
  /// What is wrong with these options ("" when nothing): every number >= 0.
  std::string problem() const;
};

/// t ← t + 1;  g = ∇ + λ·p;  η = lr / (1 + (t − 1)·lr_decay);  s ← s + g²;  p ← p − η·g / (√s + ε),
/// with s starting at initial_accumulator_value.
class Adagrad : public Optimizer {
 public:
  /// Optimizes `params` (floating leaves) as one group; throws std::invalid_argument on bad options.
  Adagrad(std::vector<Tensor> params, AdagradOptions options = AdagradOptions());
  /// Adds a group with its own options.
  void add_param_group(std::vector<Tensor> params, AdagradOptions options);
  void step() override;
  /// The options of group `group`.
  const AdagradOptions& options(size_t group = 0) const { return options_.at(group); }

 protected:
  std::vector<OptionField> group_fields(size_t g) override { return options_.at(g).fields(); }
  std::string group_options_problem(size_t g, const std::map<std::string, double>& values) const override {
    return options_problem(with_values(options_.at(g), values));
  }

 private:
  std::vector<AdagradOptions> options_;
};

}  // namespace tapegrad::optim
