// Reductions and their gradients. Every reduction runs as a loop over [outer, reduced, inner]
// blocks, one axis at a time (the inner loop is contiguous and vectorises).
#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "autograd/parallel.hpp"

namespace tapegrad {
namespace {

using kernels::dispatch;

/// Sorted, unique, non-negative axes; all axes when `axes` is empty.
std::vector<int64_t> normalize_axes(const char* op, const Axes& axes, int64_t rank) {
  std::vector<int64_t> out;
  if (axes.empty()) {
    for (int64_t i = 0; i < rank; ++i) out.push_back(i);
    return out;
  }
  for (int64_t a : axes) out.push_back(kernels::normalize_axis(op, a, rank));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end())
    throw ShapeError(std::string("tapegrad::") + op + ": repeated axis in the axis list");
  if (rank == 0) out.clear();  // a 0-d tensor has nothing to reduce
  return out;
}

/// The shape with reduced axes set to 1 (keepdim) or removed.
Shape reduced_shape(const Shape& s, const std::vector<int64_t>& axes, bool keepdim) {
  Shape out;
  std::vector<int64_t> dims;
  for (size_t i = 0; i < s.size(); ++i) {
    bool reduced = std::find(axes.begin(), axes.end(), static_cast<int64_t>(i)) != axes.end();
    if (!reduced) dims.push_back(s[i]);
    else if (keepdim) dims.push_back(1);
  }
  return Shape(dims);
}

enum class Reduce { sum, max, min };

/// Σ_r base[r] over one contiguous run: floating sums accumulate in double (8 independent lanes:
/// one running sum is latency-bound); int64 sums are exact. Runs longer than parallel::kGrain are
/// summed per fixed chunk of kGrain and the chunk sums added in order (parallel::parallel_reduce),
/// so the result is the same at every thread count.
template <class T>
T sum_run(const T* base, int64_t red) {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
  auto chunk = [base](int64_t lo, int64_t hi) {
    Acc lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t r = lo;
    for (; r + 8 <= hi; r += 8)
      for (int j = 0; j < 8; ++j) lane[j] += static_cast<Acc>(base[r + j]);
    Acc acc = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; r < hi; ++r) acc += base[r];
    return acc;
  };
  return static_cast<T>(parallel::parallel_reduce(int64_t(0), red, parallel::kGrain, Acc(0), chunk,
                                                  [](Acc a, Acc b) { return a + b; }));
}

/// Columns [lo, hi) of one [red, inner] block (row stride inner) reduced over its rows into dst.
template <class T>
void reduce_columns(const T* base, T* dst, int64_t red, int64_t inner, int64_t lo, int64_t hi, Reduce kind) {
  if (red == 0) {  // Σ∅ = 0 (max/min of an empty axis are refused before)
    std::fill(dst + lo, dst + hi, T(0));
    return;
  }
  std::copy(base + lo, base + hi, dst + lo);
  for (int64_t r = 1; r < red; ++r) {
    const T* row = base + r * inner;
    if (kind == Reduce::sum) {
      if constexpr (!std::is_same_v<T, bool>)
        for (int64_t i = lo; i < hi; ++i) dst[i] += row[i];
    } else if (kind == Reduce::max) {  // NaN propagates, as in PyTorch: a NaN row value always wins
      for (int64_t i = lo; i < hi; ++i) dst[i] = (row[i] > dst[i] || kernels::is_nan(row[i])) ? row[i] : dst[i];
    } else {
      for (int64_t i = lo; i < hi; ++i) dst[i] = (row[i] < dst[i] || kernels::is_nan(row[i])) ? row[i] : dst[i];
    }
  }
}

/// One [red, inner] block reduced into dst[0, inner). Each output element is computed in the same
/// order whether the block's columns are split over threads or not.
template <class T>
void reduce_block(const T* base, T* dst, int64_t red, int64_t inner, Reduce kind) {
  if (inner == 1) {
    if constexpr (!std::is_same_v<T, bool>) {  // bool is summed as int64 (sum converts it)
      if (kind == Reduce::sum) {
        dst[0] = sum_run(base, red);
        return;
      }
    }
    T acc = base[0];
    for (int64_t r = 1; r < red; ++r)
      acc = kind == Reduce::max ? (base[r] > acc || kernels::is_nan(base[r]) ? base[r] : acc)
                                : (base[r] < acc || kernels::is_nan(base[r]) ? base[r] : acc);
    dst[0] = acc;
    return;
  }
  parallel::parallel_for(0, inner, parallel::rows_grain(red), [&](int64_t lo, int64_t hi) {
    reduce_columns(base, dst, red, inner, lo, hi, kind);
  });
}

/// Reduces one axis of x (keepdim) with the given operation: blocks in parallel when there are
/// several, else the block's columns (or, for a full sum, its fixed chunks).
Tensor reduce_axis(const Tensor& x, int64_t axis, Reduce kind) {
  Shape out_shape = x.shape();
  const int64_t red = out_shape[static_cast<size_t>(axis)];
  out_shape[static_cast<size_t>(axis)] = 1;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.shape()[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(axis) + 1; i < x.shape().size(); ++i) inner *= x.shape()[i];
  Tensor out = Tensor::empty(out_shape, x.dtype());
  kernels::dispatch_all(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* px = x.data<T>();
    T* po = out.mutable_data<T>();
    parallel::parallel_for(0, outer, parallel::rows_grain(red * inner), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) reduce_block(px + o * red * inner, po + o * inner, red, inner, kind);
    });
  });
  return out;
}

/// Reduces all `axes` (normalised) and returns the keepdim-shaped result.
Tensor reduce_kernel(const char* op, const Tensor& x, const std::vector<int64_t>& axes, Reduce kind) {
  if (kind != Reduce::sum)
    for (int64_t a : axes)
      if (x.shape()[static_cast<size_t>(a)] == 0)
        throw ShapeError(std::string("tapegrad::") + op + ": cannot reduce the empty axis " + std::to_string(a) +
                         " of shape " + to_string(x.shape()));
  if (axes.empty()) return kernels::copy(x);
  Tensor cur = x;
  for (auto it = axes.rbegin(); it != axes.rend(); ++it) cur = reduce_axis(cur, *it, kind);
  return cur;
}

/// Broadcasts a reduced gradient back over the reduced axes.
Tensor expand_reduced(const Tensor& g, const Shape& keep_shape, const Shape& in_shape) {
  return expand(reshape(g, keep_shape), in_shape);
}

}  // namespace

Tensor sum(const Tensor& x_in, const Axes& axes_in, bool keepdim) {
  kernels::check_defined("sum", x_in);
  const Tensor x = x_in.dtype() == DType::b8 ? x_in.to(DType::i64) : x_in;  // PyTorch: Σ bool is int64
  auto axes = normalize_axes("sum", axes_in, x.dim());
  Shape keep = reduced_shape(x.shape(), axes, true);
  Tensor result = kernels::alias(reduce_kernel("sum", x, axes, Reduce::sum), reduced_shape(x.shape(), axes, keepdim));
  return record("sum", result, {x}, [keep, in = x.shape()](const BackwardContext& ctx) -> Grads {
    return {expand_reduced(ctx.grad, keep, in)};
  });
}

Tensor mean(const Tensor& x, const Axes& axes_in, bool keepdim) {
  kernels::check_defined("mean", x);
  if (!is_floating(x.dtype()))
    throw DTypeError(std::string("tapegrad::mean: needs a floating tensor, got ") + dtype_name(x.dtype()) + " " +
                     to_string(x.shape()) + " (convert with .to(DType::f32))");
  auto axes = normalize_axes("mean", axes_in, x.dim());
  int64_t count = 1;
  for (int64_t a : axes) count *= x.shape()[static_cast<size_t>(a)];
  if (count == 0) throw ShapeError("tapegrad::mean: mean over zero elements of shape " + to_string(x.shape()));
  return mul(sum(x, axes_in, keepdim), 1.0 / static_cast<double>(count));
}

namespace {
Tensor extremum(const char* op, const Tensor& x, const Axes& axes_in, bool keepdim, Reduce kind) {
  kernels::check_defined(op, x);
  auto axes = normalize_axes(op, axes_in, x.dim());
  Shape keep = reduced_shape(x.shape(), axes, true);
  Tensor kept = reduce_kernel(op, x, axes, kind);
  Tensor result = kernels::alias(kept, reduced_shape(x.shape(), axes, keepdim));
  return record(op, result, {x}, save_for_backward(x, kept), [keep](const BackwardContext& ctx) -> Grads {
    const Tensor &x = ctx.saved(0), &kept = ctx.saved(1);
    // The gradient goes to the positions holding the extremum, split evenly among ties.
    Tensor mask = eq(x, expand(kept, x.shape())).to(x.dtype());
    Axes axes;
    for (size_t i = 0; i < keep.size(); ++i)
      if (keep[i] == 1 && x.shape()[i] != 1) axes.push_back(static_cast<int64_t>(i));
    Tensor ties = axes.empty() ? ones_like(kept) : reshape(sum(mask, axes, true), keep);
    return {mul(mask, expand(div(reshape(ctx.grad, keep), ties), x.shape()))};
  });
}
}  // namespace

Tensor max(const Tensor& x, const Axes& axes, bool keepdim) { return extremum("max", x, axes, keepdim, Reduce::max); }
Tensor min(const Tensor& x, const Axes& axes, bool keepdim) { return extremum("min", x, axes, keepdim, Reduce::min); }

Tensor var(const Tensor& x, const Axes& axes_in, int64_t correction, bool keepdim) {
  kernels::check_defined("var", x);
  if (!is_floating(x.dtype()))
    throw DTypeError(std::string("tapegrad::var: needs a floating tensor, got ") + dtype_name(x.dtype()) + " " +
                     to_string(x.shape()));
  auto axes = normalize_axes("var", axes_in, x.dim());
  int64_t count = 1;
  for (int64_t a : axes) count *= x.shape()[static_cast<size_t>(a)];
  if (count - correction <= 0)
    throw ShapeError("tapegrad::var: " + std::to_string(count) + " elements with correction " +
                     std::to_string(correction) + " (shape " + to_string(x.shape()) + ")");
  Tensor centered = sub(x, mean(x, axes_in, true));
  return mul(sum(mul(centered, centered), axes_in, keepdim), 1.0 / static_cast<double>(count - correction));
}

Tensor logsumexp(const Tensor& x, const Axes& axes_in, bool keepdim) {
  kernels::check_defined("logsumexp", x);
  auto axes = normalize_axes("logsumexp", axes_in, x.dim());
  Tensor shift;
  {
    NoGradGuard guard;  // the shift is a constant: the gradient of the result does not depend on it
    shift = reduce_kernel("logsumexp", x, axes, Reduce::max);
    dispatch(shift.dtype(), "logsumexp", [&](auto z) {
      using T = decltype(z);
      T* p = shift.mutable_data<T>();
      for (int64_t i = 0; i < shift.numel(); ++i)
        if (!std::isfinite(p[i])) p[i] = T(0);
    });
  }
  Tensor lse = add(log(sum(exp(sub(x, shift)), axes_in, true)), shift);
  return keepdim ? lse : reshape(lse, reduced_shape(x.shape(), axes, false));
}

Tensor argmax(const Tensor& x, int64_t axis_in, bool keepdim) {
  kernels::check_defined("argmax", x);
  if (x.dim() == 0) return index_tensor({0}, Shape{});
  int64_t axis = kernels::normalize_axis("argmax", axis_in, x.dim());
  const int64_t red = x.shape()[static_cast<size_t>(axis)];
  if (red == 0) throw ShapeError("tapegrad::argmax: empty axis in shape " + to_string(x.shape()));
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.shape()[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(axis) + 1; i < x.shape().size(); ++i) inner *= x.shape()[i];
  Tensor out = Tensor::empty(reduced_shape(x.shape(), {axis}, keepdim), DType::i64);
  int64_t* po = out.mutable_data<int64_t>();
  kernels::dispatch_all(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* px = x.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const T* base = px + o * red * inner + i;
        int64_t best = 0;  // the first maximum; the first NaN if there is one (PyTorch's rule)
        for (int64_t r = 1; r < red && !kernels::is_nan(base[best * inner]); ++r)
          if (base[r * inner] > base[best * inner] || kernels::is_nan(base[r * inner])) best = r;
        po[o * inner + i] = best;
      }
  });
  return out;
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const size_t lead = grad.shape().size() - std::min(grad.shape().size(), shape.size());
  Axes axes;
  bool valid = grad.shape().size() >= shape.size();
  for (size_t i = 0; valid && i < grad.shape().size(); ++i) {
    if (i < lead) {
      axes.push_back(static_cast<int64_t>(i));
    } else {
      int64_t target = shape[i - lead];
      if (target == 1 && grad.shape()[i] != 1) axes.push_back(static_cast<int64_t>(i));
      else if (target != grad.shape()[i]) valid = false;
    }
  }
  if (!valid)
    throw ShapeError("tapegrad::sum_to: a gradient of shape " + to_string(grad.shape()) +
                     " cannot be reduced to shape " + to_string(shape));
  return reshape(sum(grad, axes, true), shape);
}

}  // namespace tapegrad
