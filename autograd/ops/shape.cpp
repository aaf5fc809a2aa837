// Shape ops and their gradients: views (reshape, squeeze, unsqueeze, leading-dimension slices) share
// storage; the rest copy. Each op's gradient is its inverse op, which is itself differentiable.
#include <algorithm>
#include <numeric>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "autograd/ops/broadcast.hpp"
#include "autograd/parallel.hpp"

namespace tapegrad {
namespace {

using kernels::normalize_axis;

std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

/// Calls f(flat_out, multi_index) for every element of `shape` in row-major order.
template <class F>
void for_each_index(const Shape& shape, F&& f) {
  const int64_t n = shape.numel();
  if (n == 0) return;
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t flat = 0; flat < n; ++flat) {
    f(flat, idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

/// Copies bytes of the same element size between tensors of any float/int dtype.
template <class F>
void with_elements(const Tensor& t, F&& f) {
  kernels::dispatch_all(t.dtype(), [&](auto z) { f(z); });
}

void check_index(const char* op, const Tensor& index) {
  kernels::check_defined(op, index);
  if (index.dtype() != DType::i64)
    throw DTypeError(std::string("tapegrad::") + op + ": index must be int64, got " + dtype_name(index.dtype()) +
                     " of shape " + to_string(index.shape()));
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape_in) {
  kernels::check_defined("reshape", x);
  Shape shape = shape_in;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw ShapeError("tapegrad::reshape: more than one -1 in " + to_string(shape_in));
      infer = static_cast<int64_t>(i);
    } else if (shape[i] < 0) {
      throw ShapeError("tapegrad::reshape: negative dimension in " + to_string(shape_in));
    } else if (__builtin_mul_overflow(known, shape[i], &known)) {
      throw_too_large("reshape", shape_in);
    }
  }
  if (infer >= 0 && known != 0 && x.numel() % known == 0) shape[static_cast<size_t>(infer)] = x.numel() / known;
  if (shape.numel("reshape") != x.numel() || (infer >= 0 && known == 0))
    throw ShapeError("tapegrad::reshape: cannot view shape " + to_string(x.shape()) + " (" +
                     std::to_string(x.numel()) + " elements) as " + to_string(shape_in));
  if (shape == x.shape()) return x;
  Tensor result = kernels::alias(x, shape);
  return record("reshape", result, {x},
                [in = x.shape()](const BackwardContext& ctx) -> Grads { return {reshape(ctx.grad, in)}; });
}

Tensor flatten(const Tensor& x, int64_t start, int64_t end) {
  kernels::check_defined("flatten", x);
  if (x.dim() == 0) return reshape(x, {1});
  start = normalize_axis("flatten", start, x.dim());
  end = normalize_axis("flatten", end, x.dim());
  if (start > end)
    throw ShapeError("tapegrad::flatten: start_dim " + std::to_string(start) + " > end_dim " + std::to_string(end));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < start; ++i) dims.push_back(x.size(i));
  int64_t merged = 1;
  for (int64_t i = start; i <= end; ++i) merged *= x.size(i);
  dims.push_back(merged);
  for (int64_t i = end + 1; i < x.dim(); ++i) dims.push_back(x.size(i));
  return reshape(x, Shape(dims));
}

Tensor permute(const Tensor& x, const Axes& dims_in) {
  kernels::check_defined("permute", x);
  if (static_cast<int64_t>(dims_in.size()) != x.dim())
    throw ShapeError("tapegrad::permute: " + std::to_string(dims_in.size()) + " dims for a tensor of shape " +
                     to_string(x.shape()));
  std::vector<int64_t> perm;
  for (int64_t d : dims_in) perm.push_back(normalize_axis("permute", d, x.dim()));
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i)
    if (sorted[i] != static_cast<int64_t>(i)) throw ShapeError("tapegrad::permute: dims are not a permutation");
  Shape out_shape;
  std::vector<int64_t> out_dims;
  for (int64_t p : perm) out_dims.push_back(x.size(p));
  out_shape = Shape(out_dims);
  bool identity = std::is_sorted(perm.begin(), perm.end());
  Tensor result = identity ? kernels::copy(x) : Tensor::empty(out_shape, x.dtype());
  if (!identity && x.numel() > 0) {
    auto in_strides = contiguous_strides(x.shape());
    std::vector<int64_t> src_strides;
    for (int64_t p : perm) src_strides.push_back(in_strides[static_cast<size_t>(p)]);
    with_elements(x, [&](auto z) {
      using T = decltype(z);
      const T* src = x.data<T>();
      T* dst = result.mutable_data<T>();
      const size_t rank = out_dims.size();
      const int64_t len = out_dims[rank - 1], step = src_strides[rank - 1];
      const int64_t rows = x.numel() / len;
      std::vector<int64_t> idx(rank, 0);
      int64_t off = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = 0; i < len; ++i) dst[r * len + i] = src[off + i * step];
        for (size_t d = rank - 1; d-- > 0;) {
          off += src_strides[d];
          if (++idx[d] < out_dims[d]) break;
          off -= src_strides[d] * out_dims[d];
          idx[d] = 0;
        }
      }
    });
  }
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[static_cast<size_t>(perm[i])] = static_cast<int64_t>(i);
  return record("permute", result, {x},
                [inverse](const BackwardContext& ctx) -> Grads { return {permute(ctx.grad, inverse)}; });
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  kernels::check_defined("transpose", x);
  Axes perm(static_cast<size_t>(x.dim()));
  std::iota(perm.begin(), perm.end(), 0);
  const auto a0 = static_cast<size_t>(normalize_axis("transpose", d0, x.dim())),
             a1 = static_cast<size_t>(normalize_axis("transpose", d1, x.dim()));
  if (x.dim() > 0) std::swap(perm[a0], perm[a1]);  // a 0-d tensor (axes 0 and −1 allowed, as in PyTorch) stays as is
  return permute(x, perm);
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  kernels::check_defined("squeeze", x);
  int64_t d = normalize_axis("squeeze", dim, x.dim());
  if (x.dim() == 0) return x;
  if (x.size(d) != 1)
    throw ShapeError("tapegrad::squeeze: dimension " + std::to_string(dim) + " of shape " + to_string(x.shape()) +
                     " is not 1");
  Shape s = x.shape();
  s.erase(static_cast<size_t>(d));
  return reshape(x, s);
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  kernels::check_defined("unsqueeze", x);
  int64_t d = normalize_axis("unsqueeze", dim, x.dim() + 1);
  Shape s = x.shape();
  s.insert(static_cast<size_t>(d), 1);
  return reshape(x, s);
}

Tensor expand(const Tensor& x, const Shape& shape) {
  kernels::check_defined("expand", x);
  shape.numel("expand");
  bool ok = shape.size() >= x.shape().size();
  if (ok) {
    try {
      ok = kernels::broadcast_shapes("expand", x.shape(), shape) == shape;
    } catch (const ShapeError&) {
      ok = false;
    }
  }
  if (!ok) throw ShapeError("tapegrad::expand: cannot broadcast shape " + to_string(x.shape()) + " to " + to_string(shape));
  if (shape == x.shape()) return x;
  Tensor result = Tensor::empty(shape, x.dtype());
  with_elements(x, [&](auto z) {
    using T = decltype(z);
    const T* src = x.data<T>();
    T* dst = result.mutable_data<T>();
    if (x.numel() == 1) {
      std::fill_n(dst, result.numel(), src[0]);
      return;
    }
    kernels::broadcast_rows<1>(shape, {&x.shape()}, [&](int64_t o, auto off, auto st, int64_t len) {
      if (st[0] == 1) std::copy(src + off[0], src + off[0] + len, dst + o);
      else std::fill_n(dst + o, len, src[off[0]]);
    });
  });
  return record("expand", result, {x},
                [in = x.shape()](const BackwardContext& ctx) -> Grads { return {sum_to(ctx.grad, in)}; });
}

// ---- slicing ------------------------------------------------------------------------------------

namespace {
struct SliceSpec {
  int64_t dim, start, count, step, outer, inner, size;
};

SliceSpec make_slice(const char* op, const Shape& shape, int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (shape.empty()) throw ShapeError(std::string("tapegrad::") + op + ": cannot slice a 0-d tensor");
  if (step <= 0) throw ShapeError(std::string("tapegrad::") + op + ": step must be positive, got " + std::to_string(step));
  int64_t d = normalize_axis(op, dim, static_cast<int64_t>(shape.size()));
  int64_t n = shape[static_cast<size_t>(d)];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  // The count, written so that no step (up to INT64_MAX) overflows.
  SliceSpec s{d, start, end == start ? 0 : (end - start - 1) / step + 1, step, 1, 1, n};
  for (int64_t i = 0; i < d; ++i) s.outer *= shape[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(d) + 1; i < shape.size(); ++i) s.inner *= shape[i];
  return s;
}

/// Copies between the full tensor and its slice, in either direction.
template <class T>
void slice_copy(const SliceSpec& s, const T* full, T* part) {
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.count; ++i) {
      const T* f = full + (o * s.size + s.start + i * s.step) * s.inner;
      std::copy(f, f + s.inner, part + (o * s.count + i) * s.inner);
    }
}
/// The reverse: writes `part` into the slice of `full`.
template <class T>
void slice_write(const SliceSpec& s, T* full, const T* part) {
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.count; ++i) {
      const T* p = part + (o * s.count + i) * s.inner;
      std::copy(p, p + s.inner, full + (o * s.size + s.start + i * s.step) * s.inner);
    }
}
}  // namespace

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  kernels::check_defined("slice", x);
  SliceSpec s = make_slice("slice", x.shape(), dim, start, end, step);
  Shape out = x.shape();
  out[static_cast<size_t>(s.dim)] = s.count;
  Tensor result;
  if (s.outer == 1 && s.step == 1) {  // a contiguous block: a view, no copy
    result = kernels::alias(x, out);
    result.impl()->offset += s.start * s.inner;
  } else {
    result = Tensor::empty(out, x.dtype());
    with_elements(x, [&](auto z) {
      using T = decltype(z);
      slice_copy<T>(s, x.data<T>(), result.mutable_data<T>());
    });
  }
  const int64_t e = s.count ? s.start + (s.count - 1) * s.step + 1 : s.start;  // one past the last taken
  return record("slice", result, {x},
                [in = x.shape(), dim = s.dim, st = s.start, e, step](const BackwardContext& ctx) -> Grads {
                  return {slice_backward(ctx.grad, in, dim, st, e, step)};
                });
}

Tensor slice_backward(const Tensor& src, const Shape& shape, int64_t dim, int64_t start, int64_t end, int64_t step) {
  kernels::check_defined("slice_backward", src);
  SliceSpec s = make_slice("slice_backward", shape, dim, start, end, step);
  Shape expect = shape;
  expect[static_cast<size_t>(s.dim)] = s.count;
  if (src.shape() != expect)
    throw ShapeError("tapegrad::slice_backward: source of shape " + to_string(src.shape()) + " for a slice of shape " +
                     to_string(expect));
  Tensor result = zeros(shape, src.dtype());
  with_elements(src, [&](auto z) {
    using T = decltype(z);
    slice_write<T>(s, result.mutable_data<T>(), src.data<T>());
  });
  return record("slice_backward", result, {src}, [dim = s.dim, start = s.start, end, step](const BackwardContext& ctx) -> Grads {
    return {slice(ctx.grad, dim, start, end, step)};
  });
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) throw ShapeError("tapegrad::cat: needs at least one tensor");
  for (auto& t : xs) kernels::check_same_dtype("cat", xs[0], t);
  const Tensor& first = xs[0];
  if (first.dim() == 0) throw ShapeError("tapegrad::cat: cannot concatenate 0-d tensors (use stack)");
  int64_t d = normalize_axis("cat", dim, first.dim());
  Shape out = first.shape();
  out[static_cast<size_t>(d)] = 0;
  std::vector<int64_t> sizes;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor& t = xs[k];
    bool ok = t.dim() == first.dim();
    for (int64_t i = 0; ok && i < t.dim(); ++i) ok = i == d || t.size(i) == first.size(i);
    if (!ok)
      throw ShapeError("tapegrad::cat: tensor " + std::to_string(k) + " has shape " + to_string(t.shape()) +
                       ", incompatible with " + to_string(first.shape()) + " along dim " + std::to_string(d));
    sizes.push_back(t.size(d));
    if (__builtin_add_overflow(out[static_cast<size_t>(d)], t.size(d), &out[static_cast<size_t>(d)]))
      throw ShapeError("tapegrad::cat: the sizes along dim " + std::to_string(d) + " of " + std::to_string(xs.size()) +
                       " tensors of shape " + to_string(first.shape()) + " add up to more than int64 can count");
  }
  Tensor result = Tensor::empty(out, first.dtype());
  int64_t offset = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    SliceSpec s = make_slice("cat", out, d, offset, offset + sizes[k], 1);
    with_elements(first, [&](auto z) {
      using T = decltype(z);
      slice_write<T>(s, result.mutable_data<T>(), xs[k].data<T>());
    });
    offset += sizes[k];
  }
  return record("cat", result, xs, [sizes, d](const BackwardContext& ctx) -> Grads {
    Grads grads;
    int64_t off = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      grads.push_back(ctx.needs(k) ? slice(ctx.grad, d, off, off + sizes[k]) : Tensor());
      off += sizes[k];
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) throw ShapeError("tapegrad::stack: needs at least one tensor");
  for (size_t k = 0; k < xs.size(); ++k)
    if (xs[k].shape() != xs[0].shape())
      throw ShapeError("tapegrad::stack: tensor " + std::to_string(k) + " has shape " + to_string(xs[k].shape()) +
                       ", expected " + to_string(xs[0].shape()));
  std::vector<Tensor> parts;
  int64_t d = normalize_axis("stack", dim, xs[0].dim() + 1);
  for (auto& t : xs) parts.push_back(unsqueeze(t, d));
  return cat(parts, d);
}

// ---- indexing -----------------------------------------------------------------------------------

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  kernels::check_defined("index_select", x);
  check_index("index_select", index);
  if (index.dim() != 1)
    throw ShapeError("tapegrad::index_select: index must be 1-D, got shape " + to_string(index.shape()));
  if (x.dim() == 0) throw ShapeError("tapegrad::index_select: cannot index a 0-d tensor");
  int64_t d = normalize_axis("index_select", dim, x.dim());
  Shape out = x.shape();
  out[static_cast<size_t>(d)] = index.numel();
  SliceSpec s = make_slice("index_select", x.shape(), d, 0, x.size(d), 1);
  const int64_t* idx = index.data<int64_t>();
  for (int64_t i = 0; i < index.numel(); ++i)
    if (idx[i] < 0 || idx[i] >= s.size)
      throw ShapeError("tapegrad::index_select: index " + std::to_string(idx[i]) + " out of range for dim " +
                       std::to_string(d) + " of shape " + to_string(x.shape()));
  Tensor result = Tensor::empty(out, x.dtype());
  with_elements(x, [&](auto z) {
    using T = decltype(z);
    const T* src = x.data<T>();
    T* dst = result.mutable_data<T>();
    const int64_t k = index.numel();
    // the batch gather (TensorDataset::get): selected rows in parallel, each written by one thread
    parallel::parallel_for(0, s.outer * k, parallel::rows_grain(s.inner), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t o = r / k, i = r % k;
        const T* f = src + (o * s.size + idx[i]) * s.inner;
        std::copy(f, f + s.inner, dst + r * s.inner);
      }
    });
  });
  return record("index_select", result, {x}, save_for_backward(index), [in = x.shape(), d](const BackwardContext& ctx) -> Grads {
    return {index_add(in, d, ctx.saved(0), ctx.grad)};
  });
}

Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  kernels::check_defined("index_add", src);
  check_index("index_add", index);
  int64_t d = normalize_axis("index_add", dim, static_cast<int64_t>(shape.size()));
  Shape expect = shape;
  expect[static_cast<size_t>(d)] = index.numel();
  if (index.dim() != 1 || src.shape() != expect)
    throw ShapeError("tapegrad::index_add: source of shape " + to_string(src.shape()) + " and index of shape " +
                     to_string(index.shape()) + " for a result of shape " + to_string(shape));
  SliceSpec s = make_slice("index_add", shape, d, 0, shape[static_cast<size_t>(d)], 1);
  const int64_t* idx = index.data<int64_t>();
  for (int64_t i = 0; i < index.numel(); ++i)
    if (idx[i] < 0 || idx[i] >= s.size)
      throw ShapeError("tapegrad::index_add: index " + std::to_string(idx[i]) + " out of range for shape " +
                       to_string(shape));
  Tensor result = zeros(shape, src.dtype());
  kernels::dispatch(src.dtype(), "index_add", [&](auto z) {
    using T = decltype(z);
    const T* from = src.data<T>();
    T* dst = result.mutable_data<T>();
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t i = 0; i < index.numel(); ++i) {
        T* f = dst + (o * s.size + idx[i]) * s.inner;
        const T* p = from + (o * index.numel() + i) * s.inner;
        for (int64_t j = 0; j < s.inner; ++j) f[j] += p[j];
      }
  });
  return record("index_add", result, {src}, save_for_backward(index), [d](const BackwardContext& ctx) -> Grads {
    return {index_select(ctx.grad, d, ctx.saved(0))};
  });
}

namespace {
/// Shared loop of gather and scatter_add: visits (element of index, offset in the full tensor).
template <class F>
void gather_loop(const char* op, const Shape& full, int64_t d, const Tensor& index, F&& f) {
  auto strides = contiguous_strides(full);
  const int64_t* idx = index.data<int64_t>();
  for_each_index(index.shape(), [&](int64_t flat, const std::vector<int64_t>& mi) {
    int64_t target = idx[flat];
    if (target < 0 || target >= full[static_cast<size_t>(d)])
      throw ShapeError(std::string("tapegrad::") + op + ": index " + std::to_string(target) +
                       " out of range for dim " + std::to_string(d) + " of shape " + to_string(full));
    int64_t off = 0;
    for (size_t k = 0; k < mi.size(); ++k)
      off += (static_cast<int64_t>(k) == d ? target : mi[k]) * strides[k];
    f(flat, off);
  });
}

void check_gather_shapes(const char* op, const Shape& full, int64_t d, const Tensor& index) {
  bool ok = index.shape().size() == full.size();
  for (size_t k = 0; ok && k < full.size(); ++k)
    ok = static_cast<int64_t>(k) == d || index.shape()[k] <= full[k];
  if (!ok)
    throw ShapeError(std::string("tapegrad::") + op + ": index of shape " + to_string(index.shape()) +
                     " does not fit a tensor of shape " + to_string(full) + " along dim " + std::to_string(d));
}
}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  kernels::check_defined("gather", x);
  check_index("gather", index);
  int64_t d = normalize_axis("gather", dim, x.dim());
  check_gather_shapes("gather", x.shape(), d, index);
  Tensor result = Tensor::empty(index.shape(), x.dtype());
  kernels::dispatch_all(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* src = x.data<T>();
    T* dst = result.mutable_data<T>();
    gather_loop("gather", x.shape(), d, index, [&](int64_t flat, int64_t off) { dst[flat] = src[off]; });
  });
  return record("gather", result, {x}, save_for_backward(index), [in = x.shape(), d](const BackwardContext& ctx) -> Grads {
    return {scatter_add(in, d, ctx.saved(0), ctx.grad)};
  });
}

Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  kernels::check_defined("scatter_add", src);
  check_index("scatter_add", index);
  int64_t d = normalize_axis("scatter_add", dim, static_cast<int64_t>(shape.size()));
  check_gather_shapes("scatter_add", shape, d, index);
  if (src.shape() != index.shape())
    throw ShapeError("tapegrad::scatter_add: source of shape " + to_string(src.shape()) + " for an index of shape " +
                     to_string(index.shape()));
  Tensor result = zeros(shape, src.dtype());
  kernels::dispatch(src.dtype(), "scatter_add", [&](auto z) {
    using T = decltype(z);
    const T* from = src.data<T>();
    T* dst = result.mutable_data<T>();
    gather_loop("scatter_add", shape, d, index, [&](int64_t flat, int64_t off) { dst[off] += from[flat]; });
  });
  return record("scatter_add", result, {src}, save_for_backward(index), [d](const BackwardContext& ctx) -> Grads {
    return {gather(ctx.grad, d, ctx.saved(0))};
  });
}

Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype) {
  check_index("one_hot", labels);
  if (num_classes <= 0) throw ShapeError("tapegrad::one_hot: num_classes must be positive, got " + std::to_string(num_classes));
  Shape out = labels.shape();
  out.push_back(num_classes);
  Tensor result = zeros(out, dtype);
  const int64_t* l = labels.data<int64_t>();
  kernels::dispatch(dtype, "one_hot", [&](auto z) {
    using T = decltype(z);
    T* dst = result.mutable_data<T>();
    for (int64_t i = 0; i < labels.numel(); ++i) {
      if (l[i] < 0 || l[i] >= num_classes)
        throw ShapeError("tapegrad::one_hot: label " + std::to_string(l[i]) + " at position " + std::to_string(i) +
                         " is outside [0, " + std::to_string(num_classes) + ")");
      dst[i * num_classes + l[i]] = T(1);
    }
  });
  return result;
}

}  // namespace tapegrad
