#pragma once
/// \file functions.hpp
/// The differentiable op set. Every op checks its arguments and throws ShapeError / DTypeError
/// naming the op and the shapes before anything is recorded. Binary ops broadcast like numpy;
/// scalar forms take a double that is converted to the tensor's dtype (no type promotion).
/// Axes may be negative (counted from the end).
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {

using Axes = std::vector<int64_t>;

// ---- elementwise (autograd/ops/elementwise.cpp) ------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);  ///< a + b
Tensor sub(const Tensor& a, const Tensor& b);  ///< a − b
Tensor mul(const Tensor& a, const Tensor& b);  ///< a · b
Tensor div(const Tensor& a, const Tensor& b);  ///< a / b
Tensor pow(const Tensor& a, const Tensor& b);  ///< a^b; d/db = a^b · ln a
Tensor pow(const Tensor& a, double exponent);  ///< a^p; d/da = p · a^(p−1)
/// Elementwise max / min. Where a == b the gradient is split evenly, half to each (PyTorch 1.13's
/// rule for maximum/minimum too).
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);   ///< d/dx = sign(x) (0 at 0)
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);  ///< d/dx = 1 − tanh²
Tensor sigmoid(const Tensor& x);  ///< 1/(1+e^−x); d/dx = σ(1−σ)
Tensor erf(const Tensor& x);   ///< d/dx = 2/√π · e^(−x²)
Tensor relu(const Tensor& x);  ///< max(x, 0); gradient 0 at 0
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
/// Which GELU formula gelu computes (PyTorch's `approximate` argument).
enum class GeluApproximate {
  none,  ///< exact: x·Φ(x) = 0.5·x·(1 + erf(x/√2))
  tanh   ///< 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GPT-2's form)
};
/// GELU, PyTorch's two forms (exact by default). One fused, vectorised pass forward; the backward
/// g·gelu'(x) is one recorded op (fused too) whose own backward is written with differentiable ops,
/// so gradients of every order work:
///     none: gelu'(x) = Φ(x) + x·φ(x),                   gelu''(x) = φ(x)·(2 − x²)
///     tanh: gelu'(x) = ½(1 + t) + ½x(1 − t²)·u',  t = tanh(u), u = k(x + c·x³), u' = k(1 + 3c·x²)
/// with φ the standard normal density, k = √(2/π), c = 0.044715.
Tensor gelu(const Tensor& x, GeluApproximate approximate = GeluApproximate::none);
/// log(1 + e^(βx))/β, linear above `threshold` (PyTorch's definition).
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
/// Clamps to [min, max]; the gradient passes where min ≤ x ≤ max.
Tensor clamp(const Tensor& x, double min, double max);
/// Elementwise select: condition ≠ 0 ? a : b (all three broadcast). No gradient for condition.
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);
/// Comparisons give 0/1 tensors of the (common) dtype and have no gradient.
Tensor gt(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double b);
Tensor sign(const Tensor& x);  ///< −1, 0 or 1; no gradient

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// ---- reductions (autograd/ops/reduce.cpp) ---------------------------------------------------
/// Sum over `axes` (all axes when empty).
Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Max / min over axes. NaN propagates (a NaN anywhere in a reduced slice is its result). The
/// gradient is split evenly among the positions holding the extremum: tapegrad's rule for every
/// axis list, which is PyTorch's for the full reduction (max(x)); PyTorch's max(x, dim) instead
/// sends it all to the index it returns. The split keeps the gradient independent of which tie
/// an implementation happens to pick.
Tensor max(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor min(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Σ(x − mean)² / (n − correction); correction 1 is the unbiased estimate.
Tensor var(const Tensor& x, const Axes& axes = {}, int64_t correction = 1, bool keepdim = false);
/// log Σ exp(x), computed stably (max subtracted first).
Tensor logsumexp(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Index of the first maximum along `axis`, or of the first NaN (int64, no gradient).
Tensor argmax(const Tensor& x, int64_t axis = -1, bool keepdim = false);
/// Sums `grad` down to `shape`: undoes numpy broadcasting. The one place that does it.
Tensor sum_to(const Tensor& grad, const Shape& shape);

// ---- linear algebra (autograd/ops/linalg.cpp) -----------------------------------------------
/// numpy matmul: 1-D·1-D is a dot product, 2-D is a matrix product, higher ranks are batched with
/// broadcast batch dimensions. Everything runs as BLAS gemm calls.
Tensor matmul(const Tensor& a, const Tensor& b);
/// op(a)·op(b) for 2-D operands or 3-D operands with equal batch, op = transpose when the flag is
/// set. The primitive behind matmul; transposes never copy.
Tensor gemm(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);

// ---- shape (autograd/ops/shape.cpp) ---------------------------------------------------------
/// Same data, new shape (one dimension may be −1). A view: no copy.
Tensor reshape(const Tensor& x, const Shape& shape);
/// Merges dimensions start..end into one.
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& x, const Axes& dims);
/// Removes dimension `dim`, which must have size 1.
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
/// Broadcasts to `shape` (numpy rules); the gradient is sum_to.
Tensor expand(const Tensor& x, const Shape& shape);
inline Tensor broadcast_to(const Tensor& x, const Shape& shape) { return expand(x, shape); }
/// Elements start, start+step, ... < end along `dim` (negative start/end count from the end).
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
/// Picks entries `index` (1-D int64) along `dim`.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// out[i][j] = x[i][index[i][j]] for dim 1 (index has x's rank; int64).
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// Inverse of gather: zeros of `shape` with `src` added at `index` along `dim`.
Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);
/// Inverse of index_select: zeros of `shape` with `src` added at rows `index` along `dim`.
Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);
/// Inverse of slice: zeros of `shape` with `src` written into the slice.
Tensor slice_backward(const Tensor& src, const Shape& shape, int64_t dim, int64_t start, int64_t end,
                      int64_t step);
/// One-hot rows of `num_classes` (float32) from int64 labels; no gradient.
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype = DType::f32);

// ---- softmax family (autograd/ops/softmax.cpp) ----------------------------------------------
/// exp(x − max) / Σ exp(x − max) along `axis`; finite for any finite logits.
Tensor softmax(const Tensor& x, int64_t axis = -1);
/// x − max − log Σ exp(x − max) along `axis`.
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

}  // namespace tapegrad
