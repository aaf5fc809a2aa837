#pragma once
/// \file adagrad.hpp
/// Adagrad (PyTorch 1.13's algorithm).
#include "optim/optimizer.hpp"

namespace tapegrad::optim {

struct AdagradOptions {
  explicit AdagradOptions(double lr = 1e-2) : lr_(lr) {}
  TAPEGRAD_OPTION(double, lr, 1e-2);
  TAPEGRAD_OPTION(double, lr_decay, 0.0);
  TAPEGRAD_OPTION(double, weight_decay, 0.0);
  TAPEGRAD_OPTION(double, initial_accumulator_value, 0.0);
  TAPEGRAD_OPTION(double, eps, 1e-10);

 public:
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
  Adagrad(std::vector<Tensor> params, AdagradOptions options = AdagradOptions());
  void add_param_group(std::vector<Tensor> params, AdagradOptions options);
  void step() override;
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
