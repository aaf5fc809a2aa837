#pragma once
/// \file custom_op.hpp
/// Custom ops: write the forward and the backward in one place; the op is recorded and replayed
/// like a built-in, is named in errors (a wrongly shaped gradient names it), can be
/// gradient-checked, and supports create_graph when its backward uses differentiable ops.
///
///     // y = x³, dy/dx = 3x²
///     Tensor cube(const Tensor& x) {
///       return custom_op("cube", {x},
///           [](const std::vector<Tensor>& in) { return in[0] * in[0] * in[0]; },
///           [](const std::vector<Tensor>& in, const Tensor& grad, const Tensor& /*result*/) -> Grads {
///             return {grad * 3.0 * in[0] * in[0]};
///           });
///     }
///
/// The forward runs with recording off (it may use any ops or raw loops); the backward receives
/// the inputs, the incoming gradient and the output, and returns one gradient per input
/// (undefined for inputs without one).
#include <functional>
#include <vector>

#include "autograd/node.hpp"

namespace tapegrad {

/// A custom op's forward: the op's output from its inputs (run with recording off).
using CustomForward = std::function<Tensor(const std::vector<Tensor>& inputs)>;
/// A custom op's backward: from the inputs, the gradient w.r.t. the output (the output's shape) and
/// the output, one gradient per input, each of its input's shape or undefined (no gradient).
using CustomBackward =
    std::function<Grads(const std::vector<Tensor>& inputs, const Tensor& grad, const Tensor& result)>;

/// Runs `forward` on `inputs` and records `backward` for it under `name`.
Tensor custom_op(const char* name, const std::vector<Tensor>& inputs, const CustomForward& forward,
                 CustomBackward backward);

}  // namespace tapegrad
