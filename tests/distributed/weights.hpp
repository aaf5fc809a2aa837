#pragma once
// What the distributed tests compare: two models' parameters, element by element.
#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad::testing {

/// The largest |a[k][i] − b[k][i]| over the tensors of two lists of the same shapes.
inline double max_abs_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double d = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    auto va = a[k].to_vector(), vb = b[k].to_vector();
    for (size_t i = 0; i < va.size(); ++i) d = std::max(d, std::abs(va[i] - vb[i]));
  }
  return d;
}

}  // namespace tapegrad::testing
