#include "optim/sgd.hpp"

#include "autograd/node.hpp"
#include "autograd/parallel.hpp"

namespace tapegrad::optim {

SGD::SGD(std::vector<Tensor> params, SGDOptions options) : Optimizer("SGD") { add_param_group(std::move(params), options); }

std::string SGDOptions::problem() const {
  if (!(lr_ >= 0)) return "lr must be >= 0, got " + std::to_string(lr_);
  if (!(momentum_ >= 0)) return "momentum must be >= 0, got " + std::to_string(momentum_);
  if (!(weight_decay_ >= 0)) return "weight_decay must be >= 0, got " + std::to_string(weight_decay_);
  if (nesterov_ && (momentum_ <= 0 || dampening_ != 0))
    return "nesterov momentum requires momentum > 0 and dampening = 0, got momentum=" + std::to_string(momentum_) +
           " dampening=" + std::to_string(dampening_);
  return "";
}

void SGD::add_param_group(std::vector<Tensor> params, SGDOptions o) {
  check_options(o);
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
        parallel::parallel_for(0, n, parallel::kGrain, [=](int64_t lo, int64_t hi) {
          for (int64_t k = lo; k < hi; ++k) {
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
    });
  }
}

}  // namespace tapegrad::optim
