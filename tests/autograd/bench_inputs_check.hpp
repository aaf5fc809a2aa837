// Shared by the autograd and nn tests: every registered op of a family has benchmark inputs that
// bench_registry can time, forward and backward.
#pragma once
#include <doctest/doctest.h>

#include <string>

#include "autograd/autograd.hpp"

/// For each registered op whose family passes `wanted`: it has a bench maker; the maker's inputs
/// include a float32 one requiring grad; the op (or the OpBench's own fn) runs on them, its result
/// requires grad, and a backward from a seed of the result's shape gives every input that requires
/// grad a gradient of its shape (no input requires grad for nothing). Returns the ops checked.
template <class Wanted>
int check_bench_inputs_on_registry(Wanted wanted) {
  using namespace tapegrad;
  int checked = 0;
  for (const OpInfo& op : op_registry()) {
    if (!wanted(op.family)) continue;
    INFO(op.name);
    REQUIRE(op.bench);
    OpBench b = op.bench();
    REQUIRE_FALSE(b.inputs.empty());
    int float32_grads = 0;
    for (const Tensor& t : b.inputs)
      if (t.defined() && t.requires_grad()) float32_grads += t.dtype() == DType::f32;
    CHECK(float32_grads >= 1);
    Tensor result = (b.fn ? b.fn : op.fn)(b.inputs);
    REQUIRE(result.requires_grad());
    result.backward(result.dim() > 0 ? randn(result.shape(), result.dtype()) : Tensor());
    for (const Tensor& t : b.inputs)
      if (t.defined() && t.requires_grad()) {
        REQUIRE(t.grad().defined());
        CHECK(t.grad().shape() == t.shape());
      }
    ++checked;
  }
  return checked;
}
