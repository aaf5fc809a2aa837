#include "optim/rmsprop.hpp"

#include <cmath>

#include "autograd/node.hpp"

namespace tapegrad::optim {

RMSprop::RMSprop(std::vector<Tensor> params, RMSpropOptions options) : Optimizer("RMSprop") {
  add_param_group(std::move(params), options);
}

void RMSprop::add_param_group(std::vector<Tensor> params, RMSpropOptions o) {
  if (!(o.lr() >= 0)) invalid("lr must be >= 0, got " + std::to_string(o.lr()));
  if (!(o.alpha() >= 0)) invalid("alpha must be >= 0, got " + std::to_string(o.alpha()));
  if (!(o.eps() >= 0)) invalid("eps must be >= 0, got " + std::to_string(o.eps()));
  if (!(o.momentum() >= 0)) invalid("momentum must be >= 0, got " + std::to_string(o.momentum()));
  if (!(o.weight_decay() >= 0)) invalid("weight_decay must be >= 0, got " + std::to_string(o.weight_decay()));
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
        for (int64_t k = 0; k < n; ++k) {
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
  }
}

}  // namespace tapegrad::optim
