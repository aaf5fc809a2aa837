#pragma once
/// \file rmsprop.hpp
/// RMSprop (PyTorch 1.13's algorithm).
#include "optim/optimizer.hpp"

namespace tapegrad::optim {

/// RMSprop's options, chainable: `RMSpropOptions(1e-3).momentum(0.9).centered(true)`.
struct RMSpropOptions {
  /// Options with learning rate `lr` and PyTorch's other defaults.
  explicit RMSpropOptions(double lr = 1e-2) : lr_(lr) {}
  /// Learning rate, >= 0.
  TAPEGRAD_OPTION(double, lr, 1e-2);
  /// α, the decay of the running mean of g².
  TAPEGRAD_OPTION(double, alpha, 0.99);
  /// ε added to the denominator.
  TAPEGRAD_OPTION(double, eps, 1e-8);
  /// λ: λ·p is added to the gradient (L2 penalty).
  TAPEGRAD_OPTION(double, weight_decay, 0.0);
  /// μ: momentum of the scaled step (0: none).
  TAPEGRAD_OPTION(double, momentum, 0.0);
  /// Divide by an estimate of the variance (s − ḡ²) instead of the raw second moment s.
  TAPEGRAD_OPTION(bool, centered, false);

 public:
  /// The options by name, for state dicts.
  std::vector<OptionField> fields() {
    return {{"lr", &lr_, nullptr},           {"alpha", &alpha_, nullptr},       {"eps", &eps_, nullptr},
            {"weight_decay", &weight_decay_, nullptr}, {"momentum", &momentum_, nullptr}, {"centered", nullptr, &centered_}};
  }
  /// What is wrong with these options ("" when nothing): every number >= 0.
  std::string problem() const;
};

/// g = ∇ + λ·p;  s ← α·s + (1 − α)·g²;  centered: ḡ ← α·ḡ + (1 − α)·g, a = √(s − ḡ²) + ε, else a = √s + ε;
/// momentum μ > 0: b ← μ·b + g/a, p ← p − lr·b;  otherwise p ← p − lr·g/a.
class RMSprop : public Optimizer {
 public:
  /// Optimizes `params` (floating leaves) as one group; throws std::invalid_argument on bad options.
  RMSprop(std::vector<Tensor> params, RMSpropOptions options = RMSpropOptions());
  /// Adds a group with its own options.
  void add_param_group(std::vector<Tensor> params, RMSpropOptions options);
  void step() override;
  /// The options of group `group`.
  const RMSpropOptions& options(size_t group = 0) const { return options_.at(group); }

 protected:
  std::vector<OptionField> group_fields(size_t g) override { return options_.at(g).fields(); }
  std::string group_options_problem(size_t g, const std::map<std::string, double>& values) const override {
    return options_problem(with_values(options_.at(g), values));
  }

 private:
  std::vector<RMSpropOptions> options_;
};

}  // namespace tapegrad::optim
