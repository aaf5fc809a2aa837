#include "autograd/custom_op.hpp"

namespace tapegrad {

Tensor custom_op(const char* name, const std::vector<Tensor>& inputs, const CustomForward& forward,
                 CustomBackward backward) {
  Tensor result;
  {
    NoGradGuard guard;
    result = forward(inputs);
  }
  if (!result.defined()) throw std::invalid_argument(std::string("tapegrad::") + name + ": forward returned no tensor");
  // A forward that returned one of its inputs (or a view of one) must not re-parent it.
  if (result.grad_fn() || result.requires_grad()) result = result.detach();
  for (const Tensor& in : inputs)
    if (in.defined() && in.is_same(result)) result = result.detach();
  return record(
      name, result, inputs, save_for_backward(inputs),
      [n = inputs.size(), backward = std::move(backward)](const BackwardContext& ctx) -> Grads {
        std::vector<Tensor> saved(n);
        for (size_t i = 0; i < n; ++i) saved[i] = ctx.saved(i);
        return backward(saved, ctx.grad, ctx.result);
      },
      /*save_result=*/true);
}

}  // namespace tapegrad
