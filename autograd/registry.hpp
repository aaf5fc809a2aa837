#pragma once
/// \file registry.hpp
/// The op registry, in the spirit of PyTorch's OpInfo: every differentiable op registers a
/// function and sample inputs (float64, covering broadcasting and edge shapes); one test runs
/// gradcheck and gradgradcheck over all of them. Users register their own ops the same way:
///
///     tapegrad::register_op({"cube", "custom", [](const std::vector<Tensor>& in) { return cube(in[0]); },
///                            [] { return std::vector<OpSample>{{{randn({3}, DType::f64).requires_grad_()}, "1-D"}}; }});
#include <functional>
#include <string>
#include <vector>

#include "autograd/gradcheck.hpp"

namespace tapegrad {

struct OpSample {
  std::vector<Tensor> inputs;  ///< float64 (int64 for indices); requires_grad on those to check
  std::string description;
};

struct OpInfo {
  std::string name;
  std::string family;  ///< elementwise, reduce, linalg, shape, softmax, nn, custom ...
  TensorFunction fn;
  std::function<std::vector<OpSample>()> samples;
  bool check_gradgrad = true;  ///< false only for ops whose gradient is piecewise constant in a way
                               ///< central differences cannot see (documented per op)
  double atol = 1e-5;
  double rtol = 1e-3;
};

/// Adds an op; a second registration under the same name replaces the first.
void register_op(OpInfo info);
/// All registered ops: autograd's built-ins (registered on first use) and any added since. The
/// ops of nn/ (linear, conv2d, pooling, norms, losses; their code lives in nn/) join when a
/// program calls `nn::register_ops()` (nn/functional.hpp): autograd cannot see the layer above it.
const std::vector<OpInfo>& op_registry();
/// The op registered under `name`; std::out_of_range if there is none.
const OpInfo& find_op(const std::string& name);

}  // namespace tapegrad
