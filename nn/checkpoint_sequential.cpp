#include "nn/checkpoint_sequential.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/node.hpp"

namespace tapegrad::nn {

Tensor checkpoint_sequential(Sequential& sequential, int64_t segments, const Tensor& input,
                             const CheckpointOptions& options) {
  const auto n = static_cast<int64_t>(sequential.size());
  if (segments < 1 || segments > n)
    throw std::invalid_argument("tapegrad::nn::checkpoint_sequential: segments must be in [1, " + std::to_string(n) +
                                "] for a Sequential of " + std::to_string(n) + " modules, got " +
                                std::to_string(segments));
  if (!grad_enabled()) return sequential.forward(input);
  Tensor x = input;
  int64_t begin = 0;
  for (int64_t s = 0; s < segments; ++s) {
    const int64_t end = begin + n / segments + (s < n % segments ? 1 : 0);
    auto run = [&sequential, begin, end](const Tensor& in) {
      Tensor y = in;
      for (int64_t i = begin; i < end; ++i) y = sequential[static_cast<size_t>(i)]->forward(y);
      return y;
    };
    // A run with nothing to differentiate records nothing: checkpointing it would be an error.
    bool differentiable = x.requires_grad();
    for (int64_t i = begin; i < end && !differentiable; ++i)
      for (const Tensor& p : sequential[static_cast<size_t>(i)]->parameters())
        differentiable = differentiable || p.requires_grad();
    x = s + 1 < segments && differentiable ? checkpoint(run, x, options) : run(x);
    begin = end;
  }
  return x;
}

int64_t sqrt_segments(size_t n) {
  if (n == 0) return 1;
  auto k = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  return std::min<int64_t>(std::max<int64_t>(k, 1), static_cast<int64_t>(n));
}

}  // namespace tapegrad::nn
