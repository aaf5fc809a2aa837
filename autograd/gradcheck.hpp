#pragma once
/// \file gradcheck.hpp
/// Gradient checking, as a public API (in the spirit of torch.autograd.gradcheck).
///
/// gradcheck compares the analytic Jacobian (from backward) with central differences,
///     J_num[:, j] = (f(x + eps·e_j) − f(x − eps·e_j)) / (2·eps),
/// element-wise: |analytic − numeric| ≤ atol + rtol·|numeric|. Inputs must be float64; the ones
/// with requires_grad are checked (others, such as int64 indices, are passed through). It also
/// checks that backward is reentrant (two runs agree exactly), that a zero output gradient gives
/// zero input gradients, and that every gradient has its input's shape and dtype (a backward that
/// returns a wrongly shaped gradient gives a failed result naming the op, not an exception). On
/// failure the result names the input, the worst element's index and the analytic and numeric
/// values, and the op when `fn` is a single recorded op applied to the inputs.
///
///     auto r = gradcheck([](const std::vector<Tensor>& in) { return tanh(in[0]); },
///                        {randn({3, 4}, DType::f64).requires_grad_()});
///     CHECK_MESSAGE(r.ok, r.message);
///
/// **Which op is wrong?** With `GradcheckOptions().set_localize(true)` gradcheck records `fn` once and
/// checks every recorded node on its own inputs, in forward order: the node's analytic Jacobian
/// (its backward called with one-hot output gradients) against central differences of that node
/// alone. The first node whose backward disagrees is reported by name, position, input shapes and
/// worst element (`result.op`, `result.op_position`, `result.op_input_shapes`):
///
///     auto r = gradcheck(fn, {x, w}, GradcheckOptions().set_localize(true));
///     // r.message: "gradcheck (localize): op #2 'my_gelu' (inputs: [4, 3] float64) is the first
///     //             recorded op whose backward disagrees: Jacobian mismatch for input 0 ..."
///
/// A node is differentiated "alone" by re-running `fn` and perturbing one element of the node's
/// input just before the node runs (after the previous node was recorded) and reading the node's
/// output when it is recorded; so the numeric side needs no forward function of its own and works
/// for built-ins and custom ops alike. When every node passes, the composite is checked as usual; if
/// that fails, the message says that no recorded op is at fault (the mismatch comes from a value
/// computed off the tape, e.g. a `detach()`, or from an op that was skipped). Limits (what is not
/// checked is listed in `result.skipped` with the reason, never passed silently):
///   - `fn` must record the same ops in the same order on every call (a deterministic function; a
///     different sequence on a re-run is a failed result) and run them on the calling thread;
///   - a node input that is a leaf not passed to gradcheck (e.g. a parameter captured by `fn`), or a
///     tensor recorded before `fn` was called, cannot be perturbed: that input is skipped;
///   - nodes that are not float64 (or whose inputs are not), and nodes whose inputs partly overlap in
///     memory (two different views of one buffer), are skipped; the same tensor used twice (x·x) is
///     fine (its gradients are summed);
///   - computation off the tape between the previous node and this one (for the first node: from
///     the start of fn) that reads the perturbed input is seen as part of the node: a constant input
///     derived from it, such as the detached max of a stable logsumexp (`x − max(x).detach()`), makes
///     the node look wrong. A failing node with inputs that have no gradient says so in its report
///     ("this may be a false alarm"); a constant input that aliases a perturbed one is detected
///     through the node's saved tensors and the node skipped;
///   - cost: 2·numel(inputs of the node) calls of `fn` per node, so use small shapes; fast_mode is
///     not used by the localize pass.
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// The function under check: inputs in, one float64 output.
using TensorFunction = std::function<Tensor(const std::vector<Tensor>&)>;

/// How gradcheck compares, chainable: `GradcheckOptions().set_atol(1e-7).set_localize(true)`.
struct GradcheckOptions {
  double eps = 1e-6;   ///< central-difference step
  double atol = 1e-5;  ///< absolute tolerance of |analytic − numeric|
  double rtol = 1e-3;  ///< relative tolerance, times |numeric|
  /// Compare random projections uᵀ·J·v instead of the full Jacobian (for large inputs). A weaker
  /// check: the tolerances apply to the projected sum, so a small error in a few entries of a large
  /// Jacobian can hide in it (5% in one entry of a 100 × 100 input passes); a wrong formula, a
  /// wrong broadcast or reduction does not. Full mode (the default) compares every entry.
  bool fast_mode = false;
  int fast_projections = 3;  ///< fast mode: how many random (u, v) pairs
  uint64_t seed = 0;         ///< seeds fast mode's projections and gradgradcheck's v
  /// Throw AutogradError with the report instead of returning a failed result.
  bool raise_exception = false;
  /// Check every recorded node of `fn` on its own inputs and report the first whose backward
  /// disagrees (see the file comment); then the composite as usual.
  bool localize = false;

  ///@{
  /// Chainable setters: `set_x(v)` sets the field x above and returns *this.
  GradcheckOptions& set_eps(double v) { eps = v; return *this; }
  GradcheckOptions& set_atol(double v) { atol = v; return *this; }
  GradcheckOptions& set_rtol(double v) { rtol = v; return *this; }
  GradcheckOptions& set_fast_mode(bool v) { fast_mode = v; return *this; }
  GradcheckOptions& set_raise(bool v) { raise_exception = v; return *this; }
  GradcheckOptions& set_localize(bool v) { localize = v; return *this; }
  ///@}
};

/// What gradcheck found: `ok`, or the first problem with its numbers (converts to bool).
struct GradcheckResult {
  bool ok = true;                ///< every check passed
  std::string message;           ///< what failed, with the numbers; empty when ok
  int input = -1;                ///< which input failed (−1: none, or not input-specific)
  std::vector<int64_t> index;    ///< worst element of that input
  int64_t output_index = -1;     ///< flat index of the output element
  double analytic = 0;           ///< the worst element's analytic Jacobian entry
  double numeric = 0;            ///< and its central-difference estimate
  /// The op at fault: the single op `fn` records, or the node the localize pass found; else empty.
  std::string op;
  /// Localize: the op's position among the nodes `fn` records (0 = first in forward order), or −1.
  int64_t op_position = -1;
  /// Localize: the shapes of the op's inputs that need a gradient, in input order.
  std::vector<Shape> op_input_shapes;
  int64_t ops_checked = 0;           ///< localize: how many nodes were checked on their own
  std::vector<std::string> skipped;  ///< localize: the nodes (or inputs) not checked, each with why
  /// `ok`.
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
