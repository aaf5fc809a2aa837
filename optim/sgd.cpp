#include "optim/sgd.hpp"

#include "autograd/node.hpp"

namespace tapegrad::optim {

SGD::SGD(std::vector<Tensor> params, SGDOptions options) : Optimizer("SGD") { add_param_group(std::move(params), options); }

void SGD::add_param_group(std::vector<Tensor> params, SGDOptions o) {
  if (!(o.lr() >= 0)) invalid("lr must be >= 0, got " + std::to_string(o.lr()));
  if (!(o.momentum() >= 0)) invalid("momentum must be >= 0, got " + std::to_string(o.momentum()));
  if (!(o.weight_decay() >= 0)) invalid("weight_decay must be >= 0, got " + std::to_string(o.weight_decay()));
  if (o.nesterov() && (o.momentum() <= 0 || o.dampening() != 0))
    invalid("nesterov momentum requires momentum > 0 and dampening = 0, got momentum=" + std::to_string(o.momentum()) +
            " dampening=" + std::to_string(o.dampening()));
  add_group(std::move(params));
  options_.push_back(o);
}

void SGD::step() {
  StepScope scope;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const SGDOptions& o = options_[g];
    for_each_param(g, [&](const Tensor& p, const Tensor& grad, size_t i) {
      const bool first = o.momentum() != 0 && !has_state(i, "momentum_buffer");
      Tensor buf = o.momentum() != 0 ? state(i, "momentum_buffer", p) : Tensor();
      detail::dispatch(p, [&](auto z) {
        using T = decltype(z);
        T* w = p.mutable_data<T>();
        const T* dw = grad.data<T>();
        T* b = buf.defined() ? buf.mutable_data<T>() : nullptr;
        const T lr = T(o.lr()), wd = T(o.weight_decay()), mu = T(o.momentum()), keep = T(1 - o.dampening());
        const bool nesterov = o.nesterov();
        const int64_t n = p.numel();
        for (int64_t k = 0; k < n; ++k) {
          T d = dw[k];
          if (wd != 0) d += wd * w[k];
          if (b) {
            b[k] = first ? d : mu * b[k] + keep * d;
            d = nesterov ? d + mu * b[k] : b[k];
          }
          w[k] -= lr * d;
        }
      });
    });
  }
}

}  // namespace tapegrad::optim
