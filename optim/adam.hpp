#pragma once
/// \file adam.hpp
/// Adam and AdamW (PyTorch 1.13's single-tensor algorithms). They share one update loop; AdamW
/// decays the weights directly instead of adding λ·p to the gradient.
#include "optim/optimizer.hpp"

namespace tapegrad::optim {

/// Adam's and AdamW's options, chainable: `AdamOptions(1e-3).betas(0.9, 0.95).weight_decay(0.1)`.
struct AdamOptions {
  /// Options with learning rate `lr` and PyTorch's other defaults.
  explicit AdamOptions(double lr = 1e-3) : lr_(lr) {}
  /// Decay rates β₁ (first moment) and β₂ (second moment), each in [0, 1); default (0.9, 0.999).
  AdamOptions& betas(double beta1, double beta2) {
    beta1_ = beta1;
    beta2_ = beta2;
    return *this;
  }
  /// (β₁, β₂).
  std::pair<double, double> betas() const { return {beta1_, beta2_}; }
  /// Learning rate, >= 0.
  TAPEGRAD_OPTION(double, lr, 1e-3);
  /// ε added to √v̂ in the denominator, >= 0.
  TAPEGRAD_OPTION(double, eps, 1e-8);
  /// Use the running maximum of v (AMSGrad) instead of v.
  TAPEGRAD_OPTION(bool, amsgrad, false);

 public:
  /// λ. Unless set, Adam uses 0 and AdamW 1e-2 (PyTorch's defaults), whichever options type was
  /// passed: `AdamW(params, AdamOptions(1e-3))` decays like PyTorch's AdamW(lr=1e-3).
  AdamOptions& weight_decay(double v) {
    weight_decay_ = v;
    weight_decay_set_ = true;
    return *this;
  }
  /// λ as set (0 when never set; see weight_decay_set()).
  double weight_decay() const { return weight_decay_; }
  /// Whether weight_decay(v) was called: AdamW replaces an unset λ with its default 1e-2.
  bool weight_decay_set() const { return weight_decay_set_; }

  /// The options by name, for state dicts (lr, beta1, beta2, eps, weight_decay, amsgrad).
  std::vector<OptionField> fields() {
    return {{"lr", &lr_, nullptr},      {"beta1", &beta1_, nullptr},           {"beta2", &beta2_, nullptr},
            {"eps", &eps_, nullptr},    {"weight_decay", &weight_decay_, nullptr}, {"amsgrad", nullptr, &amsgrad_}};
  }
  /// What is wrong with these options ("" when nothing): lr, eps, weight_decay >= 0, betas in [0, 1).
  std::string problem() const;

 private:
  double beta1_ = 0.9, beta2_ = 0.999;
  double weight_decay_ = 0.0;
  bool weight_decay_set_ = false;
};

/// AdamW's options: the same fields, weight_decay 1e-2.
struct AdamWOptions : AdamOptions {
  /// Options with learning rate `lr` and weight_decay 1e-2.
  explicit AdamWOptions(double lr = 1e-3) : AdamOptions(lr) { weight_decay(1e-2); }
};

/// t ← t + 1;  g = ∇ + λ·p (Adam) or p ← p·(1 − lr·λ) (AdamW);
/// m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;  v̂ = max(v̂, v) with amsgrad, else v;
/// p ← p − lr/(1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε).
class Adam : public Optimizer {
 public:
  /// Optimizes `params` (floating leaves) as one group; throws std::invalid_argument on bad options.
  Adam(std::vector<Tensor> params, AdamOptions options = AdamOptions());
  /// Adds a group with its own options.
  void add_param_group(std::vector<Tensor> params, AdamOptions options);
  void step() override;
  /// The options of group `group`.
  const AdamOptions& options(size_t group = 0) const { return options_.at(group); }

 protected:
  /// For AdamW: `decoupled` applies the weight decay to p directly instead of adding λ·p to ∇.
  Adam(const char* name, bool decoupled, std::vector<Tensor> params, AdamOptions options);
  std::vector<OptionField> group_fields(size_t g) override { return options_.at(g).fields(); }
  std::string group_options_problem(size_t g, const std::map<std::string, double>& values) const override {
    return options_problem(with_values(options_.at(g), values));
  }

 private:
  bool decoupled_;
  std::vector<AdamOptions> options_;
};

/// Adam with decoupled weight decay (Loshchilov & Hutter): p ← p·(1 − lr·λ) before the Adam step.
class AdamW : public Adam {
 public:
  /// Takes AdamOptions so that chained setters (which return AdamOptions&) work; a weight_decay
  /// left unset is 1e-2, PyTorch's AdamW default.
  AdamW(std::vector<Tensor> params, AdamOptions options = AdamWOptions()) : Adam("AdamW", true, std::move(params), options) {}
};

}  // namespace tapegrad::optim
