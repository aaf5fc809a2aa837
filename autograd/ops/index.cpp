// Triangles (tril, triu), running sums (cumsum) and sorting (sort, topk). Each works on any dtype;
// the gradients (floating inputs) are the op itself on grad (tril, triu), the reversed running
// sum (cumsum), or grad scattered back onto the sorted indices (sort, topk).
#include <algorithm>
#include <numeric>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"

namespace tapegrad {
namespace {

/// The sizes before, along and after dimension `d`: x viewed as [outer, n, inner].
struct Blocks {
  int64_t outer = 1, n = 1, inner = 1;
};
Blocks blocks(const Shape& s, int64_t d) {
  Blocks b;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i) {
    if (i < d) b.outer *= s[static_cast<size_t>(i)];
    else if (i == d) b.n = s[static_cast<size_t>(i)];
    else b.inner *= s[static_cast<size_t>(i)];
  }
  return b;
}

/// Keeps x[..., i, j] where keep(j − i), zeroes the rest.
Tensor triangle(const char* op, const Tensor& x, int64_t diagonal, bool lower) {
  kernels::check_defined(op, x);
  if (x.dim() < 2)
    throw ShapeError(std::string("tapegrad::") + op + ": needs at least 2 dimensions, got shape " + to_string(x.shape()));
  const int64_t rows = x.size(-2), cols = x.size(-1), mats = rows * cols == 0 ? 0 : x.numel() / (rows * cols);
  Tensor result = Tensor::empty(x.shape(), x.dtype());
  kernels::dispatch_all(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* px = x.data<T>();
    T* po = result.mutable_data<T>();
    for (int64_t m = 0; m < mats; ++m)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          const int64_t k = (m * rows + i) * cols + j;
          po[k] = (lower ? j - i <= diagonal : j - i >= diagonal) ? px[k] : T(0);
        }
  });
  return record(op, result, {x}, [op, diagonal, lower](const BackwardContext& ctx) -> Grads {
    return {triangle(op, ctx.grad, diagonal, lower)};
  });
}

/// Running sum along d, forward (out[i] = Σ_{k ≤ i}) or reversed (out[i] = Σ_{k ≥ i}); each is the
/// other's gradient.
Tensor scan(const Tensor& x_in, int64_t dim, bool reverse) {
  const char* op = reverse ? "cumsum_reverse" : "cumsum";
  kernels::check_defined(op, x_in);
  const Tensor x = x_in.dtype() == DType::b8 ? x_in.to(DType::i64) : x_in;  // PyTorch: cumsum of bool is int64
  const int64_t d = kernels::normalize_axis(op, dim, x.dim());
  const Blocks b = blocks(x.shape(), x.dim() == 0 ? 0 : d);
  Tensor result = Tensor::empty(x.shape(), x.dtype());
  kernels::dispatch_numeric(x.dtype(), op, [&](auto z) {
    using T = decltype(z);
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
    const T* px = x.data<T>();
    T* po = result.mutable_data<T>();
    for (int64_t o = 0; o < b.outer; ++o)
      for (int64_t i = 0; i < b.inner; ++i) {
        Acc acc = 0;
        for (int64_t s = 0; s < b.n; ++s) {
          const int64_t r = reverse ? b.n - 1 - s : s;
          const int64_t k = (o * b.n + r) * b.inner + i;
          acc += static_cast<Acc>(px[k]);
          po[k] = static_cast<T>(acc);
        }
      }
  });
  return record(op, result, {x}, [d, reverse](const BackwardContext& ctx) -> Grads { return {scan(ctx.grad, d, !reverse)}; });
}

/// The first k entries along d of x sorted by the order `descending` (ties: lower index first;
/// NaN greatest), and their indices. `op` names the recorded node.
ValuesIndices sorted_k(const char* op, const Tensor& x, int64_t dim, int64_t k, bool descending) {
  const int64_t d = kernels::normalize_axis(op, dim, x.dim());
  if (x.dim() == 0) {  // a 0-d tensor is its own sort
    ValuesIndices r = sorted_k(op, reshape(x, {1}), 0, k, descending);
    return {reshape(r.values, {}), reshape(r.indices, {})};
  }
  const Blocks b = blocks(x.shape(), d);
  if (k < 0 || k > b.n)
    throw ShapeError(std::string("tapegrad::") + op + ": k = " + std::to_string(k) + " is outside [0, " +
                     std::to_string(b.n) + "] for dim " + std::to_string(d) + " of shape " + to_string(x.shape()));
  Shape out_shape = x.shape();
  out_shape[static_cast<size_t>(d)] = k;
  Tensor values = Tensor::empty(out_shape, x.dtype());
  Tensor indices = Tensor::empty(out_shape, DType::i64);
  kernels::dispatch_all(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* px = x.data<T>();
    T* pv = values.mutable_data<T>();
    int64_t* pi = indices.mutable_data<int64_t>();
    std::vector<int64_t> order(static_cast<size_t>(b.n));
    for (int64_t o = 0; o < b.outer; ++o)
      for (int64_t i = 0; i < b.inner; ++i) {
        const T* base = px + o * b.n * b.inner + i;
        auto at = [&](int64_t r) { return base[r * b.inner]; };
        // A total order: by value (NaN greatest), then by index, so sorting is stable.
        auto before = [&](int64_t p, int64_t q) {
          const T u = at(p), v = at(q);
          const bool un = kernels::is_nan(u), vn = kernels::is_nan(v);
          if (un || vn) return un != vn ? (descending ? un : vn) : p < q;
          if (u != v) return descending ? v < u : u < v;
          return p < q;
        };
        std::iota(order.begin(), order.end(), int64_t(0));
        std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
        for (int64_t r = 0; r < k; ++r) {
          const int64_t out = (o * k + r) * b.inner + i;
          pv[out] = at(order[static_cast<size_t>(r)]);
          pi[out] = order[static_cast<size_t>(r)];
        }
      }
  });
  values = record(op, values, {x}, save_for_backward(indices), [in = x.shape(), d](const BackwardContext& ctx) -> Grads {
    return {scatter_add(in, d, ctx.saved(0), ctx.grad)};
  });
  return {values, indices};
}

}  // namespace

Tensor tril(const Tensor& x, int64_t diagonal) { return triangle("tril", x, diagonal, true); }
Tensor triu(const Tensor& x, int64_t diagonal) { return triangle("triu", x, diagonal, false); }

Tensor cumsum(const Tensor& x, int64_t dim) { return scan(x, dim, false); }

ValuesIndices sort(const Tensor& x, int64_t dim, bool descending) {
  kernels::check_defined("sort", x);
  const int64_t n = x.dim() == 0 ? 1 : x.size(kernels::normalize_axis("sort", dim, x.dim()));
  return sorted_k("sort", x, dim, n, descending);
}

ValuesIndices topk(const Tensor& x, int64_t k, int64_t dim, bool largest, bool /*sorted*/) {
  kernels::check_defined("topk", x);
  return sorted_k("topk", x, dim, k, largest);
}

}  // namespace tapegrad
