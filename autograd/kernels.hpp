#pragma once
/// \file kernels.hpp
/// Internal: the bridge from tapegrad tensors to xtensor kernels. Included only by the library's
/// own .cpp files, so that the public headers stay free of xtensor (compile time). A kernel
/// adapts a tensor's contiguous buffer as an xtensor expression without copying.
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xnoalias.hpp>

#include <xsimd/xsimd.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/simd.hpp"
#include "autograd/tensor.hpp"

namespace tapegrad::kernels {

inline std::vector<size_t> xshape(const Shape& s) { return {s.begin(), s.end()}; }

/// The tensor's data as a read-only xtensor adaptor (row-major, no ownership, no copy).
template <class T>
auto xview(const Tensor& t) {
  return xt::adapt(t.data<T>(), static_cast<size_t>(t.numel()), xt::no_ownership(), xshape(t.shape()));
}
/// The same, writable: bumps the tensor's version (Tensor::mutable_data).
template <class T>
auto xview_mut(const Tensor& t) {
  return xt::adapt(t.mutable_data<T>(), static_cast<size_t>(t.numel()), xt::no_ownership(), xshape(t.shape()));
}

/// Calls f(T{}) with T the tensor's floating type; int64 and bool are a DTypeError naming the op.
template <class F>
decltype(auto) dispatch(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::i64:
    case DType::b8: break;
    default: throw_unknown_dtype(d);
  }
  throw DTypeError(std::string("tapegrad::") + op + ": expected a floating tensor (float32 or float64), got " +
                   dtype_name(d));
}

/// Same, int64 included: the arithmetic dtypes (bool is a DTypeError naming the op).
template <class F>
decltype(auto) dispatch_numeric(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::i64: return f(int64_t{});
    case DType::b8: break;
    default: throw_unknown_dtype(d);
  }
  throw DTypeError(std::string("tapegrad::") + op + ": not supported on bool tensors (convert with .to())");
}

/// Every dtype: f32, f64, i64 and bool; an unknown dtype code throws.
template <class F>
decltype(auto) dispatch_all(DType d, F&& f) {
  switch (d) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::i64: return f(int64_t{});
    case DType::b8: return f(bool{});
  }
  throw_unknown_dtype(d);
}

/// The dtypes a kernel accepts, for the templates that take the dispatch as a parameter.
enum class Accepts { floating, numeric, all };
template <Accepts A, class F>
decltype(auto) dispatch_as(DType d, const char* op, F&& f) {
  if constexpr (A == Accepts::floating) return dispatch(d, op, std::forward<F>(f));
  else if constexpr (A == Accepts::numeric) return dispatch_numeric(d, op, std::forward<F>(f));
  else return dispatch_all(d, std::forward<F>(f));
}

/// NaN test that compiles for every element type (false for integers and bool).
template <class T>
constexpr bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
void check_defined(const char* op, const Tensor& t);
/// numpy broadcasting of two shapes; ShapeError naming the op otherwise.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
/// Normalises a possibly negative axis for a tensor of rank `rank`; ShapeError naming the op.
int64_t normalize_axis(const char* op, int64_t axis, int64_t rank);

/// Contiguous deep copy (not recorded).
Tensor copy(const Tensor& t);
/// dst += src (same shape and dtype), in place, not recorded.
void add_inplace(const Tensor& dst, const Tensor& src);
/// C[m, n] = op(A)·op(B) + beta·C on raw row-major buffers, OpenBLAS or libxsmm per shape (gemm_backend.hpp):
/// A is [m, k] ([k, m] when ta), B is [k, n] ([n, k] when tb). T is float or double.
template <class T>
void gemm_raw(const T* a, const T* b, T* c, int64_t m, int64_t n, int64_t k, bool ta, bool tb, T beta);
/// gemm_raw on row-major matrices with row strides lda, ldb, ldc ≥ their row lengths, so operands
/// can be column blocks of wider rows (attention reads q, k, v in place from a packed [N, T, 3E]).
/// Any m, n, k ≥ 0 (k = 0 scales C by beta); OpenBLAS or libxsmm as for gemm_raw.
template <class T>
void gemm_strided(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t m, int64_t n, int64_t k,
                  bool ta, bool tb, T beta);

/// A tensor sharing `t`'s storage with a new shape and no history.
Tensor alias(const Tensor& t, const Shape& shape);

/// max(x[0..n)) over a contiguous row; −∞ for n = 0. A NaN may or may not win (callers that care
/// check the row themselves). simd::row_max: xsimd-vectorised, AVX-512 or baseline chosen at run time.
template <class T>
T row_max(const T* x, int64_t n) {
  return simd::row_max(x, n);
}

/// The row step of softmax, log_softmax and cross-entropy over a contiguous row of n ≥ 1 values:
/// sets m = max(in) (0 when not finite), writes out[k] = exp(in[k] − m) unless out is null, and
/// returns Σ exp(in[k] − m). simd::exp_shifted_row: xsimd-vectorised (a scalar exp per element made
/// a [256, 1000] softmax 5× slower than libtorch's), AVX-512 or baseline chosen at run time.
template <class T>
T exp_shifted_row(const T* in, T* out, int64_t n, T& m) {
  return simd::exp_shifted_row(in, out, n, m);
}

}  // namespace tapegrad::kernels
