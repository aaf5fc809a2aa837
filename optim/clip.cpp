#include "optim/clip.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "optim/optimizer.hpp"

namespace tapegrad::optim {
namespace {
/// Calls f(element) for every gradient element of the parameters that have a gradient; f's result
/// (when it returns one) replaces the element, in place.
template <class F>
void for_each_grad_element(const std::vector<Tensor>& params, F&& f) {
  for (auto& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    detail::dispatch(g, [&](auto z) {
      using T = decltype(z);
      T* d = g.mutable_data<T>();
      for (int64_t k = 0; k < g.numel(); ++k) {
        if constexpr (std::is_void_v<decltype(f(d[k]))>) f(d[k]);
        else d[k] = static_cast<T>(f(d[k]));
      }
    });
  }
}
}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  if (!(max_norm >= 0) || !(norm_type > 0))
    throw std::invalid_argument("tapegrad::optim::clip_grad_norm_: needs max_norm >= 0 and norm_type > 0, got " +
                                std::to_string(max_norm) + " and " + std::to_string(norm_type));
  const bool inf = std::isinf(norm_type);
  double acc = 0;
  for_each_grad_element(params, [&](auto v) {
    const double a = std::abs(static_cast<double>(v));
    acc = inf ? std::max(acc, a) : acc + (norm_type == 2.0 ? a * a : std::pow(a, norm_type));
  });
  const double total = inf ? acc : (norm_type == 2.0 ? std::sqrt(acc) : std::pow(acc, 1.0 / norm_type));
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1) for_each_grad_element(params, [coef](auto v) { return v * coef; });
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  if (!(clip_value >= 0))
    throw std::invalid_argument("tapegrad::optim::clip_grad_value_: clip_value must be >= 0, got " + std::to_string(clip_value));
  for_each_grad_element(params, [clip_value](auto v) {
    const auto c = static_cast<decltype(v)>(clip_value);
    return std::clamp(v, -c, c);
  });
}

}  // namespace tapegrad::optim
