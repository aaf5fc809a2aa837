#pragma once
/// \file functions.hpp
/// The differentiable op set. Every op checks its arguments and throws ShapeError / DTypeError
/// naming the op and the shapes before anything is recorded. Binary ops broadcast like numpy and
/// promote mixed dtypes (the table in dtype.hpp); scalar forms take a `Scalar` (any C++ number),
/// which does not promote a tensor of its own category or a higher one: float32 · 2.5 is float32,
/// int64 · 2 is int64, int64 · 2.5 is float32. Axes may be negative (counted from the end).
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// Dimension indices for reductions and permutations (negative: counted from the end).
using Axes = std::vector<int64_t>;

// ---- elementwise (autograd/ops/elementwise.cpp) ------------------------------------------
/// The dtype of a binary op between a and b: promote_types, a 0-d tensor not promoting a tensor
/// with dimensions of the same or a higher category (dtype.hpp).
DType result_type(const Tensor& a, const Tensor& b);
/// The dtype of `a op s`: a's unless the scalar's category is higher (dtype.hpp).
DType result_type(const Tensor& a, const Scalar& s);

Tensor add(const Tensor& a, const Tensor& b);  ///< a + b (bool + bool is logical or)
Tensor sub(const Tensor& a, const Tensor& b);  ///< a − b (not on bool: use logical_not / logical_xor)
Tensor mul(const Tensor& a, const Tensor& b);  ///< a · b (bool · bool is logical and)
Tensor div(const Tensor& a, const Tensor& b);  ///< a / b, true division: int64 / int64 is float32
Tensor pow(const Tensor& a, const Tensor& b);  ///< a^b (floating); d/db = a^b · ln a
///@{
/// ⌊a / b⌋, rounding toward −inf (Python's //, PyTorch's floor_divide); int64 or floating, no
/// gradient. Integer division by zero is std::invalid_argument; floating gives ±inf / NaN.
Tensor floor_divide(const Tensor& a, const Tensor& b);
Tensor floor_divide(const Tensor& a, const Scalar& b);
///@}
///@{
/// a − b·⌊a / b⌋: the remainder has the divisor's sign (Python's %, PyTorch's remainder);
/// int64 or floating; d/da = 1, d/db = −⌊a / b⌋. Integer division by zero is std::invalid_argument.
Tensor remainder(const Tensor& a, const Tensor& b);
Tensor remainder(const Tensor& a, const Scalar& b);
///@}
Tensor pow(const Tensor& a, double exponent);  ///< a^p; d/da = p · a^(p−1)
/// Elementwise max / min (any dtype). Where a == b the gradient is split evenly, half to each (PyTorch 1.13's
/// rule for maximum/minimum too).
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);  ///< elementwise min; ties as maximum
Tensor add(const Tensor& a, const Scalar& b);  ///< a + b
Tensor sub(const Tensor& a, const Scalar& b);  ///< a − b
Tensor mul(const Tensor& a, const Scalar& b);  ///< a · b
Tensor div(const Tensor& a, const Scalar& b);  ///< a / b (true division); b = 0 is std::invalid_argument
Tensor neg(const Tensor& x);  ///< −x (int64 or floating; not bool)
Tensor exp(const Tensor& x);   ///< eˣ; d/dx = eˣ
Tensor log(const Tensor& x);   ///< natural log; d/dx = 1/x (−inf at 0, NaN below)
Tensor sqrt(const Tensor& x);  ///< √x; d/dx = 1/(2√x)
Tensor abs(const Tensor& x);   ///< |x| (int64 or floating); d/dx = sign(x) (0 at 0)
Tensor sin(const Tensor& x);   ///< d/dx = cos x
Tensor cos(const Tensor& x);   ///< d/dx = −sin x
Tensor tanh(const Tensor& x);  ///< d/dx = 1 − tanh²
Tensor sigmoid(const Tensor& x);  ///< 1/(1+e^−x); d/dx = σ(1−σ)
Tensor erf(const Tensor& x);   ///< d/dx = 2/√π · e^(−x²)
Tensor relu(const Tensor& x);  ///< max(x, 0); gradient 0 at 0
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);  ///< x for x > 0, else slope·x
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
/// Elementwise select: condition ? a : b (all three broadcast). The condition must be bool
/// (DTypeError otherwise, as PyTorch); a and b are promoted. No gradient for the condition.
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);
/// x with `value` where `mask` (bool, broadcast to x's shape) is true; keeps x's dtype. The
/// gradient is zero where the value was written.
Tensor masked_fill(const Tensor& x, const Tensor& mask, const Scalar& value);
/// Comparisons in the operands' result type, returning bool (no gradient). NaN compares unequal
/// to everything, itself included.
Tensor eq(const Tensor& a, const Tensor& b);  ///< a == b
Tensor ne(const Tensor& a, const Tensor& b);  ///< a != b
Tensor lt(const Tensor& a, const Tensor& b);  ///< a < b
Tensor le(const Tensor& a, const Tensor& b);  ///< a <= b
Tensor gt(const Tensor& a, const Tensor& b);  ///< a > b
Tensor ge(const Tensor& a, const Tensor& b);  ///< a >= b
Tensor eq(const Tensor& a, const Scalar& b);  ///< a == b
Tensor ne(const Tensor& a, const Scalar& b);  ///< a != b
Tensor lt(const Tensor& a, const Scalar& b);  ///< a < b
Tensor le(const Tensor& a, const Scalar& b);  ///< a <= b
Tensor gt(const Tensor& a, const Scalar& b);  ///< a > b
Tensor ge(const Tensor& a, const Scalar& b);  ///< a >= b
/// Logical ops on any dtypes (nonzero, NaN included, is true), returning bool.
///@{
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_xor(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& x);
///@}
Tensor sign(const Tensor& x);  ///< −1, 0 or 1 (int64 or floating); no gradient

///@{
/// Operators: add, sub, mul, div and neg (broadcasting and promoting as those functions do).
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Scalar& b);
Tensor operator-(const Tensor& a, const Scalar& b);
Tensor operator*(const Tensor& a, const Scalar& b);
Tensor operator/(const Tensor& a, const Scalar& b);
Tensor operator+(const Scalar& a, const Tensor& b);
Tensor operator-(const Scalar& a, const Tensor& b);
Tensor operator*(const Scalar& a, const Tensor& b);
Tensor operator/(const Scalar& a, const Tensor& b);
///@}

// ---- reductions (autograd/ops/reduce.cpp) ---------------------------------------------------
/// Sum over `axes` (all axes when empty). int64 and bool sum to int64 (exact).
Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Mean over `axes` (floating tensors only, as PyTorch).
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Max / min over axes (any dtype; bool: any / all). NaN propagates (a NaN anywhere in a reduced slice is its result). The
/// gradient is split evenly among the positions holding the extremum: tapegrad's rule for every
/// axis list, which is PyTorch's for the full reduction (max(x)); PyTorch's max(x, dim) instead
/// sends it all to the index it returns. The split keeps the gradient independent of which tie
/// an implementation happens to pick.
Tensor max(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor min(const Tensor& x, const Axes& axes = {}, bool keepdim = false);  ///< see max
/// Σ(x − mean)² / (n − correction); correction 1 is the unbiased estimate.
Tensor var(const Tensor& x, const Axes& axes = {}, int64_t correction = 1, bool keepdim = false);
/// log Σ exp(x), computed stably (max subtracted first).
Tensor logsumexp(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Index of the first maximum along `axis`, or of the first NaN (any dtype; int64, no gradient).
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
/// Swaps dimensions dim0 and dim1 (a copy in the new layout; the gradient transposes back).
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
/// Reorders the dimensions: output dimension i is input dimension dims[i].
Tensor permute(const Tensor& x, const Axes& dims);
/// Removes dimension `dim`, which must have size 1.
Tensor squeeze(const Tensor& x, int64_t dim);
/// Inserts a dimension of size 1 at `dim` (a view).
Tensor unsqueeze(const Tensor& x, int64_t dim);
/// Broadcasts to `shape` (numpy rules); the gradient is sum_to.
Tensor expand(const Tensor& x, const Shape& shape);
/// Same as expand (numpy's name).
inline Tensor broadcast_to(const Tensor& x, const Shape& shape) { return expand(x, shape); }
/// Elements start, start+step, ... < end along `dim` (negative start/end count from the end).
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
/// Joins tensors along existing dimension `dim` (the others must match).
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
/// Joins same-shaped tensors along a new dimension `dim`.
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

// ---- indexing, triangles, scans, sorting (autograd/ops/index.cpp) ---------------------------
/// Values and their indices along a dimension (int64), as sort and topk return them:
/// `auto [values, indices] = sort(x);`.
struct ValuesIndices {
  Tensor values;   ///< the selected values (differentiable)
  Tensor indices;  ///< their positions along the dimension, int64
};
/// The lower triangle of the last two dimensions: x[..., i, j] where j − i ≤ diagonal, 0 elsewhere
/// (any dtype). The gradient is tril(grad, diagonal).
Tensor tril(const Tensor& x, int64_t diagonal = 0);
/// The upper triangle: x[..., i, j] where j − i ≥ diagonal, 0 elsewhere. The gradient is triu(grad).
Tensor triu(const Tensor& x, int64_t diagonal = 0);
/// Running sum along `dim`: out[i] = Σ_{k ≤ i} x[k]. int64 and bool give int64. The gradient is
/// the reversed running sum of grad: dx[k] = Σ_{i ≥ k} grad[i].
Tensor cumsum(const Tensor& x, int64_t dim);
/// Sorts along `dim`, stably (equal values keep their order); NaN counts as the greatest value
/// (last ascending, first descending), as PyTorch. Any dtype. The values' gradient is scattered
/// back onto `indices`.
ValuesIndices sort(const Tensor& x, int64_t dim = -1, bool descending = false);
/// The k largest (or smallest) values along `dim` and their indices, best first; among equal
/// values the lower index comes first (`sorted = false` is accepted and gives the same order).
/// 0 ≤ k ≤ size(dim). The values' gradient is scattered back onto `indices`.
ValuesIndices topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true, bool sorted = true);

// ---- softmax family (autograd/ops/softmax.cpp) ----------------------------------------------
/// exp(x − max) / Σ exp(x − max) along `axis`; finite for any finite logits.
Tensor softmax(const Tensor& x, int64_t axis = -1);
/// x − max − log Σ exp(x − max) along `axis`.
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

}  // namespace tapegrad
