#include "optim/clip.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "optim/optimizer.hpp"

namespace tapegrad::optim {
namespace {
/// Calls f(d, n) with the data and length of every gradient of the parameters that have one.
template <class F>
void for_each_grad(const std::vector<Tensor>& params, F&& f) {
  for (auto& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    detail::dispatch(g, [&](auto z) { f(g.mutable_data<decltype(z)>(), g.numel()); });
  }
}

/// max(a, b), NaN if either is (std::max(a, NaN) is a: a NaN gradient would vanish from the ∞-norm)
double max_nan(double a, double b) { return b > a || b != b ? b : a; }

/// Σ |d_k|^p over n elements (p = 2: squares; p = ∞: the largest |d_k|), in double. Lanes of kLanes
/// independent partial results that an AVX2 compiler keeps in vector registers, combined in a fixed
/// order at the end: the same value on every machine and thread count (a single serial sum was a
/// chain of dependent additions, 4 % of a char-GPT iteration).
template <class T>
double partial_norm(const T* d, int64_t n, double p, bool inf) {
  constexpr int64_t kLanes = 8;
  std::array<double, kLanes> acc{};
  int64_t k = 0;
  if (inf) {
    for (; k + kLanes <= n; k += kLanes)
      for (int64_t j = 0; j < kLanes; ++j) acc[j] = max_nan(acc[j], std::abs(static_cast<double>(d[k + j])));
    for (; k < n; ++k) acc[0] = max_nan(acc[0], std::abs(static_cast<double>(d[k])));
    double m = 0;
    for (double a : acc) m = max_nan(m, a);
    return m;
  }
  if (p == 2.0) {
    for (; k + kLanes <= n; k += kLanes)
      for (int64_t j = 0; j < kLanes; ++j) {
        const double v = static_cast<double>(d[k + j]);
        acc[j] += v * v;
      }
    for (; k < n; ++k) acc[0] += static_cast<double>(d[k]) * static_cast<double>(d[k]);
  } else {
    for (; k < n; ++k) acc[0] += std::pow(std::abs(static_cast<double>(d[k])), p);
  }
  double sum = 0;
  for (double a : acc) sum += a;
  return sum;
}
}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  if (!(max_norm >= 0) || !(norm_type > 0))
    throw std::invalid_argument("tapegrad::optim::clip_grad_norm_: needs max_norm >= 0 and norm_type > 0, got " +
                                std::to_string(max_norm) + " and " + std::to_string(norm_type));
  const bool inf = std::isinf(norm_type);
  double acc = 0;
  for_each_grad(params, [&](auto* d, int64_t n) {
    const double part = partial_norm(d, n, norm_type, inf);
    acc = inf ? max_nan(acc, part) : acc + part;
  });
  const double total = inf ? acc : (norm_type == 2.0 ? std::sqrt(acc) : std::pow(acc, 1.0 / norm_type));
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1)
    for_each_grad(params, [coef](auto* d, int64_t n) {
      using T = std::remove_pointer_t<decltype(d)>;
      for (int64_t k = 0; k < n; ++k) d[k] = static_cast<T>(static_cast<double>(d[k]) * coef);
    });
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  if (!(clip_value >= 0))
    throw std::invalid_argument("tapegrad::optim::clip_grad_value_: clip_value must be >= 0, got " + std::to_string(clip_value));
  for_each_grad(params, [clip_value](auto* d, int64_t n) {
    using T = std::remove_pointer_t<decltype(d)>;
    const auto c = static_cast<T>(clip_value);
    for (int64_t k = 0; k < n; ++k) d[k] = std::clamp(d[k], -c, c);
  });
}

}  // namespace tapegrad::optim
