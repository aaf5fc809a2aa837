#include "optim/adagrad.hpp"

#include <cmath>

#include "autograd/node.hpp"

namespace tapegrad::optim {

Adagrad::Adagrad(std::vector<Tensor> params, AdagradOptions options) : Optimizer("Adagrad") {
  add_param_group(std::move(params), options);
}

void Adagrad::add_param_group(std::vector<Tensor> params, AdagradOptions o) {
  if (!(o.lr() >= 0)) invalid("lr must be >= 0, got " + std::to_string(o.lr()));
  if (!(o.lr_decay() >= 0)) invalid("lr_decay must be >= 0, got " + std::to_string(o.lr_decay()));
  if (!(o.weight_decay() >= 0)) invalid("weight_decay must be >= 0, got " + std::to_string(o.weight_decay()));
  if (!(o.initial_accumulator_value() >= 0))
    invalid("initial_accumulator_value must be >= 0, got " + std::to_string(o.initial_accumulator_value()));
  if (!(o.eps() >= 0)) invalid("eps must be >= 0, got " + std::to_string(o.eps()));
  add_group(std::move(params));
  options_.push_back(o);
}

void Adagrad::step() {
  StepScope scope;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const AdagradOptions& o = options_[g];
    for_each_param(g, [&](const Tensor& p, const Tensor& grad, size_t i) {
      double& t = counter(i, "step");
      t += 1;
      Tensor& sum_t = state(i, "sum", p, o.initial_accumulator_value());
      const double clr = o.lr() / (1 + (t - 1) * o.lr_decay());
      detail::dispatch(p, [&](auto z) {
        using T = decltype(z);
        T* w = p.mutable_data<T>();
        const T* dw = grad.data<T>();
        T* s = sum_t.mutable_data<T>();
        const T lr = T(clr), wd = T(o.weight_decay()), eps = T(o.eps());
        const int64_t n = p.numel();
        for (int64_t k = 0; k < n; ++k) {
          T d = dw[k];
          if (wd != 0) d += wd * w[k];
          s[k] += d * d;
          w[k] -= lr * (d / (std::sqrt(s[k]) + eps));
        }
      });
    });
  }
}

}  // namespace tapegrad::optim
