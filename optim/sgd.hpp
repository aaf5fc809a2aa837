#pragma once
/// \file sgd.hpp
/// Stochastic gradient descent (PyTorch 1.13's algorithm). Without momentum on a full batch it is
/// plain gradient descent, p ← p − lr·∇.
#include "optim/optimizer.hpp"

namespace tapegrad::optim {

/// SGD's options, chainable: `SGDOptions(0.1).momentum(0.9).nesterov(true)`.
struct SGDOptions {
  /// Options with learning rate `lr` and PyTorch's other defaults.
  explicit SGDOptions(double lr = 1e-2) : lr_(lr) {}
  /// Learning rate, >= 0.
  TAPEGRAD_OPTION(double, lr, 1e-2);
  /// μ: momentum (0: none).
  TAPEGRAD_OPTION(double, momentum, 0.0);
  /// The share of the new gradient left out of the momentum buffer.
  TAPEGRAD_OPTION(double, dampening, 0.0);
  /// λ: λ·p is added to the gradient (L2 penalty).
  TAPEGRAD_OPTION(double, weight_decay, 0.0);
  /// Nesterov momentum: step along d + μ·b instead of b.
  TAPEGRAD_OPTION(bool, nesterov, false);

 public:
  /// The options by name, for state dicts.
  std::vector<OptionField> fields() {
    return {{"lr", &lr_, nullptr}, {"momentum", &momentum_, nullptr}, {"dampening", &dampening_, nullptr},
            {"weight_decay", &weight_decay_, nullptr}, {"nesterov", nullptr, &nesterov_}};
  }
  /// What is wrong with these options ("" when nothing): lr, momentum, weight_decay >= 0; nesterov
  /// needs momentum > 0 and dampening 0.
  std::string problem() const;
};

/// d = ∇ + λ·p;  with momentum μ: b ← d on the first step, else b ← μ·b + (1 − dampening)·d, and
/// d = d + μ·b (nesterov) or d = b;  p ← p − lr·d.
class SGD : public Optimizer {
 public:
  /// Optimizes `params` (floating leaves) as one group; throws std::invalid_argument on bad options.
  SGD(std::vector<Tensor> params, SGDOptions options = SGDOptions());
  /// Adds a group with its own options.
  void add_param_group(std::vector<Tensor> params, SGDOptions options);
  void step() override;
  /// The options of group `group`.
  const SGDOptions& options(size_t group = 0) const { return options_.at(group); }

 protected:
  std::vector<OptionField> group_fields(size_t g) override { return options_.at(g).fields(); }
  std::string group_options_problem(size_t g, const std::map<std::string, double>& values) const override {
    return options_problem(with_values(options_.at(g), values));
  }

 private:
  std::vector<SGDOptions> options_;
};

}  // namespace tapegrad::optim
