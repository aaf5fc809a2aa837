// Losses. cross_entropy is one fused, max-shifted op (forward never forms the log-softmax tensor),
// with class weights, ignore_index and label smoothing folded into the same pass; its backward is
// one pass over the softmax the forward kept, or, when a graph of the backward is recorded
// (create_graph), the same formula in differentiable ops.
// The other losses are composites of core ops.
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "autograd/parallel.hpp"
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

/// Class-indexed inputs [N, C, d1, ...] viewed as [N, C, D] (D = d1·…, 1 for [N, C]) with targets
/// [N, D], and what the reductions need: Σ w[t_n] over the targets not ignored, and how many are.
struct ClassTargets {
  int64_t N, C, D;
  double total_weight = 0;
  int64_t ignored = 0;
};

/// Checks input [N, C] / [N, C, d...] against int64 targets [N] / [N, d...] with values in [0, C)
/// or equal to ignore_index, and the class weights [C]; nothing is recorded before this passes.
ClassTargets check_class_targets(const char* op, const Tensor& input, const Tensor& targets, int64_t ignore_index,
                                 const Tensor& weight) {
  const std::string name = std::string("tapegrad::nn::") + op;
  if (!input.defined() || !targets.defined()) throw std::invalid_argument(name + ": got an undefined tensor");
  if (!is_floating(input.dtype())) throw DTypeError(name + ": input must be floating, got " + dtype_name(input.dtype()));
  if (targets.dtype() != DType::i64)
    throw DTypeError(name + ": targets must be int64 class indices, got " + dtype_name(targets.dtype()) + " " +
                     to_string(targets.shape()));
  const Shape &in = input.shape(), &ts = targets.shape();
  bool ok = in.size() >= 2 && ts.size() == in.size() - 1 && ts[0] == in[0];
  for (size_t k = 1; ok && k < ts.size(); ++k) ok = ts[k] == in[k + 1];
  if (!ok)
    throw ShapeError(name + ": expects input [N, C] with targets [N], or [N, C, d1, ...] with targets [N, d1, ...], got input " +
                     to_string(in) + " and targets " + to_string(ts));
  ClassTargets r{in[0], in[1], 1};
  for (size_t k = 2; k < in.size(); ++k) r.D *= in[k];
  std::vector<double> w;
  if (weight.defined()) {
    if (weight.shape() != Shape{r.C})
      throw ShapeError(name + ": weight has shape " + to_string(weight.shape()) + ", expected [" + std::to_string(r.C) +
                       "] (one per class) for input " + to_string(in));
    if (weight.dtype() != input.dtype())
      throw DTypeError(name + ": weight is " + dtype_name(weight.dtype()) + ", the input is " + dtype_name(input.dtype()));
    w = weight.to_vector();
  }
  const int64_t* t = targets.data<int64_t>();
  for (int64_t i = 0; i < targets.numel(); ++i) {
    if (t[i] == ignore_index) {
      ++r.ignored;
    } else if (t[i] < 0 || t[i] >= r.C) {
      throw ShapeError(name + ": target " + std::to_string(t[i]) + " at position " + std::to_string(i) +
                       " is outside [0, " + std::to_string(r.C) + ") and is not ignore_index (" +
                       std::to_string(ignore_index) + ") for input " + to_string(in));
    } else if (!w.empty()) {
      r.total_weight += w[static_cast<size_t>(t[i])];
    }
  }
  if (w.empty()) r.total_weight = static_cast<double>(targets.numel() - r.ignored);
  return r;
}

/// cross_entropy's backward found a target outside [0, C): the version check of the saved targets
/// makes this unreachable, but its writes must never stray.
[[noreturn]] [[gnu::cold]] void target_out_of_range(int64_t t, int64_t C) {
  throw std::out_of_range("tapegrad::nn::cross_entropy: backward found target " + std::to_string(t) + " outside [0, " +
                          std::to_string(C) + ")");
}

/// The reduction of class losses ℓ (shaped like the targets): mean divides by Σ w[t_n] over the
/// targets not ignored — a plain mean when there are neither weights nor ignored targets — and is
/// NaN with a zero gradient when no target counts: all ignored, or none at all (an empty batch),
/// as in PyTorch.
Tensor reduce_class_loss(const Tensor& loss, Reduction r, const ClassTargets& ct, bool weighted) {
  if (r != Reduction::mean || (loss.numel() > 0 && !weighted && ct.ignored == 0)) return reduce(loss, r);
  if (ct.total_weight == 0) return add(mul(sum(loss), 0.0), std::numeric_limits<double>::quiet_NaN());
  return div(sum(loss), ct.total_weight);
}

/// Checks an elementwise loss's input and target, and that a mean over them is defined: an empty
/// input under Reduction::mean is a ShapeError naming the loss (as tapegrad::mean refuses zero
/// elements; sum gives 0, none an empty tensor).
void check_same_shape(const char* op, const Tensor& input, const Tensor& target, Reduction r) {
  const std::string name = std::string("tapegrad::nn::") + op;
  if (!input.defined() || !target.defined()) throw std::invalid_argument(name + ": got an undefined tensor");
  if (input.shape() != target.shape())
    throw ShapeError(name + ": input " + to_string(input.shape()) + " and target " + to_string(target.shape()) +
                     " must have the same shape");
  if (input.dtype() != target.dtype() || !is_floating(input.dtype()))
    throw DTypeError(name + ": input and target must have the same floating dtype, got " + dtype_name(input.dtype()) +
                     " and " + dtype_name(target.dtype()));
  if (r == Reduction::mean && input.numel() == 0)
    throw ShapeError(name + ": empty input " + to_string(input.shape()) +
                     ": the mean over zero elements is undefined (Reduction::sum gives 0)");
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction r) {
  return cross_entropy(logits, targets, CrossEntropyOptions().reduction(r));
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& options) {
  const double eps = options.label_smoothing();
  if (!(eps >= 0 && eps <= 1))
    throw std::invalid_argument("tapegrad::nn::cross_entropy: label_smoothing must be in [0, 1], got " + std::to_string(eps));
  const int64_t ignore = options.ignore_index();
  const Tensor weight = options.weight();
  const Reduction r = options.reduction();
  const ClassTargets ct = check_class_targets("cross_entropy", logits, targets, ignore, weight);
  const int64_t N = ct.N, C = ct.C, D = ct.D;
  Tensor per_pos = Tensor::empty(targets.shape(), logits.dtype());  // ℓ at each (n, d...)
  // The softmax, kept for a first-order backward: exp is computed once per element.
  Tensor probs = grad_enabled() && logits.requires_grad() ? Tensor::empty(logits.shape(), logits.dtype()) : Tensor();
  // no weights, smoothing, ignored targets or trailing dims: the kernels compile to the plain
  // formula (the MNIST examples' hot path keeps its instruction count)
  const bool plain = !weight.defined() && eps == 0 && D == 1 && ct.ignored == 0;
  auto run = [&](auto z, auto plain_tag) {
    using T = decltype(z);
    constexpr bool P = decltype(plain_tag)::value;
    const int64_t Dn = P ? 1 : D;
    const T* x0 = logits.data<T>();
    const int64_t* t = targets.data<int64_t>();
    const T* w = weight.defined() ? weight.data<T>() : nullptr;
    T* out = per_pos.mutable_data<T>();
    T* p0 = probs.defined() ? probs.mutable_data<T>() : nullptr;
    const T e = static_cast<T>(eps), b = e / static_cast<T>(C);
    // samples in parallel (each writes only its own row of out and probs)
    parallel::parallel_for(0, N, parallel::rows_grain(C * Dn), [&](int64_t n0, int64_t n1) {
    std::vector<T> row(D > 1 ? C : 0), prow(D > 1 && p0 ? C : 0);  // a strided row, gathered
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t i = 0; i < Dn; ++i) {
        const int64_t pos = n * Dn + i, base = n * C * Dn + i;
        const T* x = x0 + base;
        T* p = p0 ? p0 + base : nullptr;
        if (!P && D > 1) {
          for (int64_t c = 0; c < C; ++c) row[static_cast<size_t>(c)] = x[c * D];
          x = row.data();
          if (p) p = prow.data();
        }
        T m;
        const T total = kernels::exp_shifted_row(x, p, C, m);  // p keeps exp(x − m), normalised below
        const T lse = m + std::log(total);
        const int64_t tn = t[pos];
        if (!P && tn == ignore) {
          out[pos] = T(0);
        } else {
          T loss = lse - x[tn];  // logsumexp(x) − x[t]
          if (!P && w) loss *= w[tn];
          if (!P && e != T(0)) {  // (1 − ε)·w[t]·(lse − x[t]) + ε/C·Σ_c w[c]·(lse − x[c])
            T smooth = 0;
            for (int64_t c = 0; c < C; ++c) smooth += (w ? w[c] : T(1)) * (lse - x[c]);
            loss = (T(1) - e) * loss + b * smooth;
          }
          out[pos] = loss;
        }
        if (p) {
          const T inv = T(1) / total;
          for (int64_t c = 0; c < C; ++c) p[c] *= inv;
          if (!P && D > 1)
            for (int64_t c = 0; c < C; ++c) p0[base + c * D] = p[c];
        }
      }
    }
    });
  };
  auto run_any = [&](auto z) { plain ? run(z, std::true_type{}) : run(z, std::false_type{}); };
  if (logits.dtype() == DType::f32) run_any(float{});
  else run_any(double{});
  Tensor result = per_pos;
  if (r != Reduction::none) {
    NoGradGuard no_grad;
    result = reduce_class_loss(per_pos, r, ct, weight.defined());
  }
  const double W = ct.total_weight;  // the mean's denominator
  return record("cross_entropy", result, {logits}, save_for_backward(logits, targets, probs, weight),
                [r, N, C, D, ignore, eps, W, plain](const BackwardContext& ctx) -> Grads {
    const Tensor &logits = ctx.saved(0), &targets = ctx.saved(1), &probs = ctx.saved(2), &weight = ctx.saved(3);
    Tensor out = Tensor::empty(logits.shape(), logits.dtype());
    Tensor p_coef;  // create_graph: p·p_coef − out is the gradient of ℓ_n, recorded below
    if (grad_enabled() || !probs.defined()) p_coef = Tensor::empty({N, 1, D}, logits.dtype());
    // one pass: out = (p·(a + b·S) − a·onehot(t) − b·w)·g_n with a = (1 − ε)·w[t], b = ε/C, S = Σ w;
    // 0 at ignored targets. Without probs (create_graph) only the constant parts are written.
    auto fused = [&](auto z, auto plain_tag) {
      using T = decltype(z);
      constexpr bool P = decltype(plain_tag)::value;
      const T* p0 = probs.defined() && !p_coef.defined() ? probs.data<T>() : nullptr;
      const T* g = ctx.grad.data<T>();
      const int64_t* t = targets.data<int64_t>();
      const T* w = weight.defined() ? weight.data<T>() : nullptr;
      T* o0 = out.mutable_data<T>();
      T* pc = p_coef.defined() ? p_coef.mutable_data<T>() : nullptr;
      const T b = static_cast<T>(eps) / static_cast<T>(C);
      T S = static_cast<T>(C);
      if (w) {
        S = 0;
        for (int64_t c = 0; c < C; ++c) S += w[c];
      }
      // a reduced loss's scale: 1/W for mean (0 when every target is ignored: nothing contributes)
      const T sc = r == Reduction::mean ? (W > 0 ? T(1) / static_cast<T>(W) : T(0)) : T(1);
      if constexpr (P) {  // (p − onehot(t))·g_n, row by row (rows in parallel)
        parallel::parallel_for(0, N, parallel::rows_grain(C), [&](int64_t n0, int64_t n1) {
          for (int64_t n = n0; n < n1; ++n) {
            const T* p = p0 + n * C;
            T* o = o0 + n * C;
            if (t[n] < 0 || t[n] >= C) [[unlikely]] target_out_of_range(t[n], C);
            const T gn = (r == Reduction::none ? g[n] : g[0]) * sc;
            for (int64_t c = 0; c < C; ++c) o[c] = p[c] * gn;
            o[t[n]] = (p[t[n]] - T(1)) * gn;
          }
        });
        return;
      }
      parallel::parallel_for(0, N, parallel::rows_grain(C * D), [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        for (int64_t i = 0; i < D; ++i) {
          const int64_t pos = n * D + i, base = n * C * D + i;
          T* o = o0 + base;
          const int64_t tn = t[pos];
          if (!P && tn == ignore) {
            for (int64_t c = 0; c < C; ++c) o[c * D] = T(0);
            if (pc) pc[pos] = T(0);
            continue;
          }
          if (tn < 0 || tn >= C) [[unlikely]] target_out_of_range(tn, C);
          const T a = (T(1) - static_cast<T>(eps)) * (w ? w[tn] : T(1)), coef = a + b * S;
          if (pc) {  // the constants of the recorded formula (g_n applied there)
            pc[pos] = coef;
            for (int64_t c = 0; c < C; ++c) o[c * D] = b * (w ? w[c] : T(1));
            o[tn * D] += a;
            continue;
          }
          const T gn = (r == Reduction::none ? g[pos] : g[0]) * sc;
          auto write_row = [&](auto stride) {  // stride: D, or a compile-time 1 (contiguous rows vectorise)
            const T* p = p0 + base;
            if (b == T(0)) {
              const T k = coef * gn;
              for (int64_t c = 0; c < C; ++c) o[c * stride] = p[c * stride] * k;
            } else {
              for (int64_t c = 0; c < C; ++c) o[c * stride] = (p[c * stride] * coef - b * (w ? w[c] : T(1))) * gn;
            }
            o[tn * stride] = (p[tn * stride] * coef - (b == T(0) ? T(0) : b * (w ? w[tn] : T(1))) - a) * gn;
          };
          if (D == 1) write_row(std::integral_constant<int64_t, 1>{});
          else write_row(D);
        }
      }
      });
    };
    auto fused_any = [&](auto z) {
      plain && !p_coef.defined() ? fused(z, std::true_type{}) : fused(z, std::false_type{});
    };
    if (logits.dtype() == DType::f32) fused_any(float{});
    else fused_any(double{});
    if (!p_coef.defined()) return {out};
    // create_graph: differentiable in the logits (softmax) and in the incoming gradient
    Tensor g = r == Reduction::none ? reshape(ctx.grad, {N, 1, D})
                                    : (r == Reduction::mean ? mul(ctx.grad, W > 0 ? 1 / W : 0.0) : ctx.grad);
    Tensor p = softmax(reshape(logits, {N, C, D}), 1);
    return {reshape(mul(sub(mul(p, p_coef), reshape(out, {N, C, D})), g), logits.shape())};
  });
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, Reduction r) {
  return nll_loss(log_probs, targets, NllLossOptions().reduction(r));
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, const NllLossOptions& options) {
  const int64_t ignore = options.ignore_index();
  const Tensor weight = options.weight();
  const ClassTargets ct = check_class_targets("nll_loss", log_probs, targets, ignore, weight);
  const int64_t N = ct.N, D = ct.D;
  const bool plain = !weight.defined() && ct.ignored == 0;
  Tensor index = reshape(targets, {N, 1, D});  // a view; with ignored targets, a copy with 0 there
  Tensor coef;                                  // w[t_n], 0 where ignored (a constant)
  if (!plain) {
    index = Tensor::empty({N, 1, D}, DType::i64);
    std::vector<double> w = weight.defined() ? weight.to_vector() : std::vector<double>();
    const int64_t* t = targets.data<int64_t>();
    int64_t* idx = index.mutable_data<int64_t>();
    std::vector<double> cv(static_cast<size_t>(N * D));
    for (int64_t i = 0; i < N * D; ++i) {
      const bool keep = t[i] != ignore;
      idx[i] = keep ? t[i] : 0;
      cv[static_cast<size_t>(i)] = keep ? (w.empty() ? 1.0 : w[static_cast<size_t>(t[i])]) : 0.0;
    }
    coef = tensor(cv, {N, D}, log_probs.dtype());
  }
  Tensor picked = reshape(gather(reshape(log_probs, {N, ct.C, D}), 1, index), {N, D});
  Tensor loss = reshape(neg(plain ? picked : mul(picked, coef)), targets.shape());
  return reduce_class_loss(loss, options.reduction(), ct, weight.defined());
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r) {
  check_same_shape("mse_loss", input, target, r);
  Tensor d = sub(input, target);
  return reduce(mul(d, d), r);
}

Tensor half_mse_loss(const Tensor& input, const Tensor& target) {
  check_same_shape("half_mse_loss", input, target, Reduction::sum);  // its mean is over samples: below
  const int64_t n = input.dim() == 0 ? 1 : input.size(0);
  if (n == 0)  // [N, 0] with N > 0 is fine: each sample's sum is 0
    throw ShapeError("tapegrad::nn::half_mse_loss: empty input " + to_string(input.shape()) +
                     ": the mean over zero samples is undefined");
  Tensor d = sub(input, target);
  return div(sum(mul(d, d)), 2.0 * static_cast<double>(n));
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r) {
  check_same_shape("l1_loss", input, target, r);
  return reduce(abs(sub(input, target)), r);
}

Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction r, double delta) {
  check_same_shape("huber_loss", input, target, r);
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
  check_same_shape("binary_cross_entropy", probs, target, r);
  for (double p : probs.to_vector())
    if (!(p >= 0 && p <= 1))
      throw std::invalid_argument("tapegrad::nn::binary_cross_entropy: every input must be a probability in [0, 1], got " +
                                  std::to_string(p) + " in input " + to_string(probs.shape()));
  return reduce(binary_cross_entropy_elements(probs, target), r);
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, Reduction r) {
  check_same_shape("binary_cross_entropy_with_logits", logits, target, r);
  return reduce(sub(softplus(logits), mul(logits, target)), r);
}

}  // namespace tapegrad::nn::functional
