#pragma once
// One registered op's sample through gradcheck and (unless the op opts out) gradgradcheck, with the
// op's own tolerances: the check every registry-wide test runs.
#include <doctest/doctest.h>

#include "autograd/gradcheck.hpp"
#include "autograd/registry.hpp"

namespace tapegrad::test {

inline void check_registered_op(const OpInfo& op, const OpSample& sample) {
  GradcheckOptions options;
  options.atol = op.atol;
  options.rtol = op.rtol;
  GradcheckResult first = gradcheck(op.fn, sample.inputs, options);
  CHECK_MESSAGE(first.ok, first.message);
  if (op.check_gradgrad) {
    GradcheckResult second = gradgradcheck(op.fn, sample.inputs, options);
    CHECK_MESSAGE(second.ok, second.message);
  }
}

}  // namespace tapegrad::test
