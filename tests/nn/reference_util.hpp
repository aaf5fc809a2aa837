#pragma once
// Helpers for the tests that compare against scripts/make_loss_reference.py's PyTorch values.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/autograd.hpp"

namespace tapegrad::test {

/// The script's inputs: element k (row-major) is 2·sin(1.3·k + phase), float64.
inline Tensor reference_input(const Shape& shape, double phase, DType dtype = DType::f64) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) v[static_cast<size_t>(k)] = 2 * std::sin(1.3 * static_cast<double>(k) + phase);
  return tensor(v, shape, dtype);
}

/// Every element of `got` equals `want` to a relative tolerance (absolute near 0).
inline void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol).scale(1.0));
  }
}

}  // namespace tapegrad::test
