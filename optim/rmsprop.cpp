#include "optim/rmsprop.hpp"

#include <cmath>

#include "autograd/node.hpp"
#include "autograd/parallel.hpp"

namespace tapegrad::optim {

RMSprop::RMSprop(std::vector<Tensor> params, RMSpropOptions options) : Optimizer("RMSprop") {
  add_param_group(std::move(params), options);
}

std::string RMSpropOptions::problem() const {
  if (!(lr_ >= 0)) return "lr must be >= 0, got " + std::to_string(lr_);
  if (!(alpha_ >= 0)) return "alpha must be >= 0, got " + std::to_string(alpha_);
  if (!(eps_ >= 0)) return "eps must be >= 0, got " + std::to_string(eps_);
  if (!(momentum_ >= 0)) return "momentum must be >= 0, got " + std::to_string(momentum_);
  if (!(weight_decay_ >= 0)) return "weight_decay must be >= 0, got " + std::to_string(weight_decay_);
  return "";
}

void RMSprop::add_param_group(std::vector<Tensor> params, RMSpropOptions o) {
  check_options(o);
  add_group(std::move(params));
  options_.push_back(o);
}

void RMSprop::step() {
  StepScope scope;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const RMSpropOptions& o = options_[g];
    for_each_param(g, [&](const Tensor& p, const Tensor& grad, size_t i) {
      counter(i, "step") += 1;
      Tensor& sq_t = state(i, "square_avg", p);
      Tensor buf_t = o.momentum() > 0 ? state(i, "momentum_buffer", p) : Tensor();
      Tensor avg_t = o.centered() ? state(i, "grad_avg", p) : Tensor();
      detail::dispatch(p, [&](auto z) {
        using T = decltype(z);
        T* w = p.mutable_data<T>();
        const T* dw = grad.data<T>();
        T* sq = sq_t.mutable_data<T>();
        T* buf = buf_t.defined() ? buf_t.mutable_data<T>() : nullptr;
        T* ga = avg_t.defined() ? avg_t.mutable_data<T>() : nullptr;
        const T lr = T(o.lr()), alpha = T(o.alpha()), one_alpha = T(1 - o.alpha()), eps = T(o.eps());
        const T wd = T(o.weight_decay()), mu = T(o.momentum());
        const int64_t n = p.numel();
        parallel::parallel_for(0, n, parallel::kGrain, [=](int64_t lo, int64_t hi) {
          for (int64_t k = lo; k < hi; ++k) {
            T d = dw[k];
            if (wd != 0) d += wd * w[k];
            sq[k] = alpha * sq[k] + one_alpha * d * d;
            T a;
            if (ga) {
              ga[k] = alpha * ga[k] + one_alpha * d;
              a = std::sqrt(sq[k] - ga[k] * ga[k]) + eps;
            } else {
              a = std::sqrt(sq[k]) + eps;
            }
            if (buf) {
              buf[k] = mu * buf[k] + d / a;
              w[k] -= lr * buf[k];
            } else {
              w[k] -= lr * (d / a);
            }
          }
        });
      });
    });
  }
}

}  // namespace tapegrad::optim
