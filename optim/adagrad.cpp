#include "optim/adagrad.hpp"

#include <cmath>

#include "autograd/node.hpp"
#include "autograd/parallel.hpp"

namespace tapegrad::optim {

Adagrad::Adagrad(std::vector<Tensor> params, AdagradOptions options) : Optimizer("Adagrad") {
  add_param_group(std::move(params), options);
}

std::string AdagradOptions::problem() const {
  if (!(lr_ >= 0)) return "lr must be >= 0, got " + std::to_string(lr_);
  if (!(lr_decay_ >= 0)) return "lr_decay must be >= 0, got " + std::to_string(lr_decay_);
  if (!(weight_decay_ >= 0)) return "weight_decay must be >= 0, got " + std::to_string(weight_decay_);
  if (!(initial_accumulator_value_ >= 0))
    return "initial_accumulator_value must be >= 0, got " + std::to_string(initial_accumulator_value_);
  if (!(eps_ >= 0)) return "eps must be >= 0, got " + std::to_string(eps_);
  return "";
}

void Adagrad::add_param_group(std::vector<Tensor> params, AdagradOptions o) {
  check_options(o);
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
        parallel::parallel_for(0, n, parallel::kGrain, [=](int64_t lo, int64_t hi) {
          for (int64_t k = lo; k < hi; ++k) {
            T d = dw[k];
            if (wd != 0) d += wd * w[k];
            s[k] += d * d;
            w[k] -= lr * (d / (std::sqrt(s[k]) + eps));
          }
        });
      });
    });
  }
}

}  // namespace tapegrad::optim
