// Losses. cross_entropy is one fused, max-shifted op (forward never forms the log-softmax tensor);
// its backward (softmax(x) − onehot(t))·g is one pass over the softmax the forward kept, or, when a
// graph of the backward is recorded (create_graph), the same formula in differentiable ops.
// The other losses are composites of core ops.
#include <cmath>
#include <limits>
#include <string>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "nn/functional.hpp"

namespace tapegrad::nn::functional {
namespace {

Tensor reduce(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::none: return loss;
    case Reduction::sum: return sum(loss);
    case Reduction::mean: break;
  }
  return mean(loss);
}

/// Checks logits/log-probabilities [N, C] against int64 targets [N] with values in [0, C).
void check_class_targets(const char* op, const Tensor& input, const Tensor& targets) {
  const std::string name = std::string("tapegrad::nn::") + op;
  if (!input.defined() || !targets.defined()) throw std::invalid_argument(name + ": got an undefined tensor");
  if (!is_floating(input.dtype())) throw DTypeError(name + ": input must be floating, got " + dtype_name(input.dtype()));
  if (targets.dtype() != DType::i64)
    throw DTypeError(name + ": targets must be int64 class indices, got " + dtype_name(targets.dtype()) + " " +
                     to_string(targets.shape()));
  if (input.dim() != 2 || targets.dim() != 1 || targets.size(0) != input.size(0))
    throw ShapeError(name + ": expects input [N, C] and targets [N], got input " + to_string(input.shape()) +
                     " and targets " + to_string(targets.shape()));
  const int64_t C = input.size(1);
  const int64_t* t = targets.data<int64_t>();
  for (int64_t i = 0; i < targets.numel(); ++i)
    if (t[i] < 0 || t[i] >= C)
      throw ShapeError(name + ": target " + std::to_string(t[i]) + " at position " + std::to_string(i) +
                       " is outside [0, " + std::to_string(C) + ") for input " + to_string(input.shape()));
}

void check_same_shape(const char* op, const Tensor& input, const Tensor& target) {
  const std::string name = std::string("tapegrad::nn::") + op;
  if (!input.defined() || !target.defined()) throw std::invalid_argument(name + ": got an undefined tensor");
  if (input.shape() != target.shape())
    throw ShapeError(name + ": input " + to_string(input.shape()) + " and target " + to_string(target.shape()) +
                     " must have the same shape");
  if (input.dtype() != target.dtype() || !is_floating(input.dtype()))
    throw DTypeError(name + ": input and target must have the same floating dtype, got " + dtype_name(input.dtype()) +
                     " and " + dtype_name(target.dtype()));
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction r) {
  check_class_targets("cross_entropy", logits, targets);
  const int64_t N = logits.size(0), C = logits.size(1);
  Tensor per_row = Tensor::empty({N}, logits.dtype());
  // The softmax, kept for a first-order backward: exp is computed once per element.
  Tensor probs = grad_enabled() && logits.requires_grad() ? Tensor::empty({N, C}, logits.dtype()) : Tensor();
  auto run = [&](auto z) {
    using T = decltype(z);
    const T* x = logits.data<T>();
    const int64_t* t = targets.data<int64_t>();
    T* out = per_row.mutable_data<T>();
    T* p = probs.defined() ? probs.mutable_data<T>() : nullptr;
    for (int64_t n = 0; n < N; ++n, x += C) {
      T m;
      const T total = kernels::exp_shifted_row(x, p, C, m);  // p keeps exp(x − m), normalised below
      out[n] = m + std::log(total) - x[t[n]];  // logsumexp(x) − x[t]
      if (p) {
        const T inv = T(1) / total;
        for (int64_t c = 0; c < C; ++c) p[c] *= inv;
        p += C;
      }
    }
  };
  if (logits.dtype() == DType::f32) run(float{});
  else run(double{});
  Tensor result = per_row;
  if (r != Reduction::none) {
    NoGradGuard no_grad;
    result = reduce(per_row, r);
  }
  return record("cross_entropy", result, {logits}, save_for_backward(logits, targets, probs),
                [r, N, C](const BackwardContext& ctx) -> Grads {
    const Tensor &logits = ctx.saved(0), &targets = ctx.saved(1), &probs = ctx.saved(2);
    if (grad_enabled() || !probs.defined()) {  // create_graph: differentiable ops, so second order works
      Tensor g = r == Reduction::none ? reshape(ctx.grad, {N, 1}) : (r == Reduction::mean ? div(ctx.grad, double(N)) : ctx.grad);
      return {mul(sub(softmax(logits, 1), one_hot(targets, C, logits.dtype())), g)};
    }
    // first order: one pass over the saved softmax, (p − onehot(t)) · g_n
    Tensor out = Tensor::empty({N, C}, logits.dtype());
    auto fused = [&](auto z) {
      using T = decltype(z);
      const T* p = probs.data<T>();
      const T* g = ctx.grad.data<T>();
      const int64_t* t = targets.data<int64_t>();
      T* o = out.mutable_data<T>();
      const T scale = r == Reduction::mean ? T(1) / static_cast<T>(N) : T(1);
      for (int64_t n = 0; n < N; ++n, p += C, o += C) {
        if (t[n] < 0 || t[n] >= C)  // the version check makes this unreachable; the write below must never stray
          throw std::out_of_range("tapegrad::nn::cross_entropy: backward found target " + std::to_string(t[n]) +
                                  " outside [0, " + std::to_string(C) + ")");
        const T gn = (r == Reduction::none ? g[n] : g[0]) * scale;
        for (int64_t c = 0; c < C; ++c) o[c] = p[c] * gn;
        o[t[n]] = (p[t[n]] - T(1)) * gn;
      }
    };
    if (logits.dtype() == DType::f32) fused(float{});
    else fused(double{});
    return {out};
  });
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, Reduction r) {
  check_class_targets("nll_loss", log_probs, targets);
  const int64_t N = log_probs.size(0);
  return reduce(neg(reshape(gather(log_probs, 1, reshape(targets, {N, 1})), {N})), r);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r) {
  check_same_shape("mse_loss", input, target);
  Tensor d = sub(input, target);
  return reduce(mul(d, d), r);
}

Tensor half_mse_loss(const Tensor& input, const Tensor& target) {
  check_same_shape("half_mse_loss", input, target);
  const int64_t n = input.dim() == 0 ? 1 : input.size(0);
  Tensor d = sub(input, target);
  return div(sum(mul(d, d)), 2.0 * static_cast<double>(n));
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r) {
  check_same_shape("l1_loss", input, target);
  return reduce(abs(sub(input, target)), r);
}

Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction r, double delta) {
  check_same_shape("huber_loss", input, target);
  if (!(delta > 0)) throw std::invalid_argument("tapegrad::nn::huber_loss: delta must be > 0, got " + std::to_string(delta));
  Tensor d = sub(input, target);
  Tensor a = abs(d);
  Tensor quadratic = mul(mul(d, d), 0.5);
  Tensor linear = mul(sub(a, 0.5 * delta), delta);
  return reduce(where(le(a, full_like(a, delta)), quadratic, linear), r);
}

namespace {
/// −(t·log p + (1 − t)·log(1 − p)) per element, the logs clamped at −100 (PyTorch's rule, so p = 0
/// or 1 gives a finite loss). Its gradient is PyTorch's too: (p − t) / max(p·(1 − p), 1e-12) for p,
/// log(1 − p) − log(p) (clamped) for t, finite at p ∈ {0, 1} where the composite's 0/0 was NaN.
/// The backward uses differentiable ops, so second order works.
Tensor binary_cross_entropy_elements(const Tensor& probs, const Tensor& target) {
  const double inf = std::numeric_limits<double>::infinity();
  Tensor result;
  {
    NoGradGuard no_grad;
    Tensor log_p = clamp(log(probs), -100.0, inf);
    Tensor log_q = clamp(log(1.0 - probs), -100.0, inf);
    result = neg(add(mul(target, log_p), mul(1.0 - target, log_q)));
  }
  return record("binary_cross_entropy", result, {probs, target}, save_for_backward(probs, target),
                [inf](const BackwardContext& ctx) -> Grads {
                  const Tensor &p = ctx.saved(0), &t = ctx.saved(1);
                  Tensor gp, gt;
                  if (ctx.needs(0)) gp = mul(ctx.grad, div(sub(p, t), clamp(mul(p, 1.0 - p), 1e-12, inf)));
                  if (ctx.needs(1))
                    gt = mul(ctx.grad, sub(clamp(log(1.0 - p), -100.0, inf), clamp(log(p), -100.0, inf)));
                  return {gp, gt};
                });
}
}  // namespace

Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, Reduction r) {
  check_same_shape("binary_cross_entropy", probs, target);
  for (double p : probs.to_vector())
    if (!(p >= 0 && p <= 1))
      throw std::invalid_argument("tapegrad::nn::binary_cross_entropy: every input must be a probability in [0, 1], got " +
                                  std::to_string(p) + " in input " + to_string(probs.shape()));
  return reduce(binary_cross_entropy_elements(probs, target), r);
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, Reduction r) {
  check_same_shape("binary_cross_entropy_with_logits", logits, target);
  return reduce(sub(softplus(logits), mul(logits, target)), r);
}

}  // namespace tapegrad::nn::functional
