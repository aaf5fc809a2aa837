// The op of docs/adding_an_op.md: softsign written twice (as a custom op, and one level lower with
// record() as the built-ins are), and its registry entry. Included by test_adding_an_op.cpp (the
// checks) and bench/user_op_bench.cpp (the benchmark main); a test keeps the page's code blocks
// identical to these files.
#pragma once
#include <cmath>
#include <string>

#include "autograd/autograd.hpp"

namespace softsign_example {
using namespace tapegrad;

// softsign(x) = x / (1 + |x|),   d softsign / dx = 1 / (1 + |x|)²
inline Tensor softsign(const Tensor& x) {
  return custom_op("softsign", {x},
      [](const std::vector<Tensor>& in) { return in[0] / (abs(in[0]) + 1.0); },    // forward
      [](const std::vector<Tensor>& in, const Tensor& grad, const Tensor& /*result*/) -> Grads {
        Tensor d = abs(in[0]) + 1.0;                                              // backward
        return {grad / (d * d)};
      });
}

inline Tensor softsign_kernel(const Tensor& x) {
  if (x.dtype() != DType::f32 && x.dtype() != DType::f64)
    throw DTypeError("softsign: x must be float32 or float64, got " + std::string(dtype_name(x.dtype())));
  Tensor result = Tensor::empty(x.shape(), x.dtype());
  auto loop = [&](auto zero) {  // one pass over contiguous storage
    using T = decltype(zero);
    const T* in = x.data<T>();
    T* out = result.mutable_data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = in[i] / (T(1) + std::abs(in[i]));
  };
  x.dtype() == DType::f32 ? loop(0.0f) : loop(0.0);
  return record("softsign", result, {x}, save_for_backward(x), [](const BackwardContext& ctx) -> Grads {
    Tensor d = abs(ctx.saved(0)) + 1.0;  // the saved x, version-checked before this runs
    return {ctx.grad / (d * d)};
  });
}

inline void register_softsign() {
  register_op({.name = "softsign",
               .family = "custom",
               .fn = [](const std::vector<Tensor>& in) { return softsign_kernel(in[0]); },
               .samples = [] {  // float64, broadcasting and edge shapes, no value near the kink at 0
                 Tensor x = tensor({-2.0, -0.5, 0.3, 1.5, 4.0, -0.1}, {2, 3}, DType::f64);
                 return std::vector<OpSample>{{{x.requires_grad_()}, "2-D"},
                                              {{scalar(-0.7, DType::f64).requires_grad_()}, "0-d"}};
               },
               .bench = [] { return OpBench({bench_randn({256, 1024})}); }});  // float32, a batch of activations
}

}  // namespace softsign_example
