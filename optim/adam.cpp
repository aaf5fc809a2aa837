#include "optim/adam.hpp"

#include <cmath>
#include <type_traits>

#include "autograd/blas.hpp"
#include "autograd/node.hpp"

namespace tapegrad::optim {

Adam::Adam(std::vector<Tensor> params, AdamOptions options) : Adam("Adam", false, std::move(params), options) {}

Adam::Adam(const char* name, bool decoupled, std::vector<Tensor> params, AdamOptions options)
    : Optimizer(name), decoupled_(decoupled) {
  add_param_group(std::move(params), options);
}

void Adam::add_param_group(std::vector<Tensor> params, AdamOptions o) {
  auto [b1, b2] = o.betas();
  if (!(o.lr() >= 0)) invalid("lr must be >= 0, got " + std::to_string(o.lr()));
  if (!(o.eps() >= 0)) invalid("eps must be >= 0, got " + std::to_string(o.eps()));
  if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1))
    invalid("betas must be in [0, 1), got (" + std::to_string(b1) + ", " + std::to_string(b2) + ")");
  if (!(o.weight_decay() >= 0)) invalid("weight_decay must be >= 0, got " + std::to_string(o.weight_decay()));
  add_group(std::move(params));
  options_.push_back(o);
}

void Adam::step() {
  NoGradGuard no_grad;
  FlushDenormalGuard ftz;  // decaying state must not fall into slow denormal arithmetic
  for (size_t g = 0; g < groups_.size(); ++g) {
    const AdamOptions& o = options_[g];
    const auto [beta1, beta2] = o.betas();
    for_each_param(g, [&](const Tensor& p, const Tensor& grad, size_t i) {
      double& t = counter(i, "step");
      t += 1;
      Tensor& m_t = state(i, "exp_avg", p);
      Tensor& v_t = state(i, "exp_avg_sq", p);
      Tensor vmax_t = o.amsgrad() ? state(i, "max_exp_avg_sq", p) : Tensor();
      const double step_size = o.lr() / (1 - std::pow(beta1, t));
      const double bc2_sqrt = std::sqrt(1 - std::pow(beta2, t));
      detail::dispatch(p, [&](auto z) {
        using T = decltype(z);
        T* __restrict w = p.data<T>();
        const T* __restrict dw = grad.data<T>();
        T* __restrict m = m_t.data<T>();
        T* __restrict v = v_t.data<T>();
        T* __restrict vmax = vmax_t.defined() ? vmax_t.data<T>() : nullptr;
        const T b2 = T(beta2), one_b1 = T(1 - beta1), one_b2 = T(1 - beta2), eps = T(o.eps());
        const T wd = decoupled_ ? T(0) : T(o.weight_decay());
        const T decay = decoupled_ ? T(1 - o.lr() * o.weight_decay()) : T(1);
        const T bc2 = T(bc2_sqrt), lr_t = T(step_size);
        const int64_t n = p.numel();
        // The branches are hoisted out of the loop (compile-time flags) so that it vectorises.
        auto loop = [&](auto coupled_decay, auto amsgrad) {
          for (int64_t k = 0; k < n; ++k) {
            T d = dw[k];
            if constexpr (decltype(coupled_decay)::value) d += wd * w[k];
            m[k] += one_b1 * (d - m[k]);
            v[k] = b2 * v[k] + one_b2 * d * d;
            T vk = v[k];
            if constexpr (decltype(amsgrad)::value) vk = vmax[k] = vmax[k] > vk ? vmax[k] : vk;
            w[k] = w[k] * decay - lr_t * (m[k] / (std::sqrt(vk) / bc2 + eps));
          }
        };
        using yes = std::true_type;
        using no = std::false_type;
        if (wd != 0) vmax ? loop(yes{}, yes{}) : loop(yes{}, no{});
        else vmax ? loop(no{}, yes{}) : loop(no{}, no{});
      });
    });
  }
}

}  // namespace tapegrad::optim
