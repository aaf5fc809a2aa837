#include "nn/checkpoint_sequential.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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
    // The backward's recomputation runs the modules again: one that updates buffers in training
    // mode (BatchNorm's running statistics and batch count) would update them twice. Every run
    // after the first puts back the buffers it changed (only those: an unchanged buffer keeps its
    // version, which an eval-mode BatchNorm's recorded node checks).
    auto run = [&sequential, begin, end, runs = std::make_shared<int64_t>(0)](const Tensor& in) {
      std::vector<std::pair<Tensor, Tensor>> before;  // (buffer, its copy)
      if ((*runs)++ > 0) {
        NoGradGuard no_grad;
        for (int64_t i = begin; i < end; ++i)
          for (const Tensor& b : sequential[static_cast<size_t>(i)]->buffers()) before.emplace_back(b, b.clone());
      }
      Tensor y = in;
      for (int64_t i = begin; i < end; ++i) y = sequential[static_cast<size_t>(i)]->forward(y);
      for (auto& [b, copy] : before) {
        const size_t bytes = static_cast<size_t>(b.numel()) * dtype_size(b.dtype());
        if (std::memcmp(b.data<char>(), copy.data<char>(), bytes) != 0)
          std::memcpy(b.mutable_data<char>(), copy.data<char>(), bytes);
      }
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
