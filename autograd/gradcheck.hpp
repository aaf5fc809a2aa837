#pragma once
/// \file gradcheck.hpp
/// Gradient checking, as a public API (in the spirit of torch.autograd.gradcheck).
///
/// gradcheck compares the analytic Jacobian (from backward) with central differences,
///     J_num[:, j] = (f(x + eps·e_j) − f(x − eps·e_j)) / (2·eps),
/// element-wise: |analytic − numeric| ≤ atol + rtol·|numeric|. Inputs must be float64; the ones
/// with requires_grad are checked (others, such as int64 indices, are passed through). It also
/// checks that backward is reentrant (two runs agree exactly), that a zero output gradient gives
/// zero input gradients, and that every gradient has its input's shape and dtype. On failure the
/// result names the input, the worst element's index and the analytic and numeric values.
///
///     auto r = gradcheck([](const std::vector<Tensor>& in) { return tanh(in[0]); },
///                        {randn({3, 4}, DType::f64).requires_grad_()});
///     CHECK_MESSAGE(r.ok, r.message);
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {

using TensorFunction = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  /// Compare random projections uᵀ·J·v instead of the full Jacobian (for large inputs).
  bool fast_mode = false;
  int fast_projections = 3;
  uint64_t seed = 0;
  /// Throw AutogradError with the report instead of returning a failed result.
  bool raise_exception = false;

  GradcheckOptions& set_eps(double v) { eps = v; return *this; }
  GradcheckOptions& set_atol(double v) { atol = v; return *this; }
  GradcheckOptions& set_rtol(double v) { rtol = v; return *this; }
  GradcheckOptions& set_fast_mode(bool v) { fast_mode = v; return *this; }
  GradcheckOptions& set_raise(bool v) { raise_exception = v; return *this; }
};

struct GradcheckResult {
  bool ok = true;
  std::string message;           ///< what failed, with the numbers; empty when ok
  int input = -1;                ///< which input failed (−1: none, or not input-specific)
  std::vector<int64_t> index;    ///< worst element of that input
  int64_t output_index = -1;     ///< flat index of the output element
  double analytic = 0, numeric = 0;
  explicit operator bool() const { return ok; }
};

/// First-order check of `fn` at `inputs`.
GradcheckResult gradcheck(const TensorFunction& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

/// Second-order check: gradchecks (inputs, v) ↦ grad(fn(inputs), inputs, v, create_graph=true)
/// with a random v, so the backward formulas' own gradients are verified.
GradcheckResult gradgradcheck(const TensorFunction& fn, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {});

}  // namespace tapegrad
