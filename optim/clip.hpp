#pragma once
/// \file clip.hpp
/// Gradient clipping, in place on the parameters' gradients (parameters without one are skipped).
#include <limits>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad::optim {

/// Scales all gradients by min(1, max_norm / (‖g‖ + 1e-6)), where ‖g‖ is the p-norm of all
/// gradients taken together (p = ∞: the largest |g|). Returns ‖g‖ before clipping.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);
/// Clamps every gradient element to [−clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

}  // namespace tapegrad::optim
