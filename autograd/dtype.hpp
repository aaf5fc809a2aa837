#pragma once
/// \file dtype.hpp
/// Element types, type promotion, scalars, and the library's exception types.
///
/// Type promotion (PyTorch's rules for the dtypes tapegrad has). The dtypes are ordered
/// bool < int64 < float32 < float64, and `promote_types(a, b)` is the higher of the two:
///
///     promote_types | bool     int64    float32  float64
///     --------------+------------------------------------
///     bool          | bool     int64    float32  float64
///     int64         | int64    int64    float32  float64
///     float32       | float32  float32  float32  float64
///     float64       | float64  float64  float64  float64
///
/// Every op that combines operands of different dtypes computes its result dtype with
/// `result_type`, which applies the table with PyTorch's two refinements:
///   - a scalar (the `Scalar` argument of `x + 2`, `gt(x, 0.5)`) does not promote a tensor of its
///     own category or a higher one (categories: bool < integral < floating): float32 + 2.5 is
///     float32, int64 + 2 is int64. A scalar of a higher category gives that category's default
///     dtype: int64 + 2.5 is float32, bool + 1 is int64, bool + 2.5 is float32. Whether a scalar is
///     integral is how it was written: `x * 2` is integral, `x * 2.0` floating (a C++ int or a
///     double, like Python's 2 and 2.0);
///   - a 0-d tensor likewise does not promote a tensor with dimensions of the same or a higher
///     category: float32 [3] + float64 0-d is float32, int64 [3] + float64 0-d is float64.
/// Gradients flow back through a promoting op in each input's own dtype (float32 + float64 gives
/// a float64 result; the float32 input's gradient is float32). bool and int64 tensors never
/// require grad.
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace tapegrad {

/// Bad shapes, dtypes or arguments given to an op. The message names the op and the values.
struct ShapeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct DTypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
/// Misuse of the autograd engine (backward twice through freed buffers, non-scalar backward ...).
struct AutogradError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// float32 is the default; float64 is for gradient checking; int64 holds indices, class labels and
/// integer arithmetic; bool (1 byte, stored as C++ `bool`) holds masks and comparison results.
/// int64 and bool have no gradient.
enum class DType : uint8_t {
  f32,  ///< float32 ("float32"), the default
  f64,  ///< float64 ("float64")
  i64,  ///< int64 ("int64"): indices, labels, token ids; no gradient
  b8,   ///< bool ("bool"), one byte per element: masks, comparisons; no gradient
};

/// Thrown for a DType value outside the enum (a corrupted value): no switch falls through silently.
[[noreturn]] inline void throw_unknown_dtype(DType d) {
  throw DTypeError("tapegrad: unknown dtype code " + std::to_string(static_cast<int>(d)));
}

/// "float32", "float64", "int64" or "bool" (PyTorch's names).
inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i64: return "int64";
    case DType::b8: return "bool";
  }
  return "?";
}
/// Bytes per element: 4, 8, 8, 1.
inline size_t dtype_size(DType d) {
  switch (d) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i64: return 8;
    case DType::b8: return 1;
  }
  throw_unknown_dtype(d);
}
/// float32 or float64: the dtypes that can require grad.
inline bool is_floating(DType d) {
  switch (d) {
    case DType::f32:
    case DType::f64: return true;
    case DType::i64:
    case DType::b8: return false;
  }
  throw_unknown_dtype(d);
}

/// The promotion order bool < int64 < float32 < float64, as 0..3.
inline int dtype_rank(DType d) {
  switch (d) {
    case DType::b8: return 0;
    case DType::i64: return 1;
    case DType::f32: return 2;
    case DType::f64: return 3;
  }
  throw_unknown_dtype(d);
}
/// The category of a dtype: 0 bool, 1 integral, 2 floating.
inline int dtype_category(DType d) { return dtype_rank(d) >= 2 ? 2 : dtype_rank(d); }

/// The table above: the higher of `a` and `b` in bool < int64 < float32 < float64.
inline DType promote_types(DType a, DType b) { return dtype_rank(a) >= dtype_rank(b) ? a : b; }

///@{
/// The DType that stores C++ type T (float, double, int64_t, bool); other types do not compile.
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<bool>() { return DType::b8; }
///@}
static_assert(sizeof(bool) == 1, "tapegrad stores bool tensors as one byte per element");

/// A number passed to an op beside a tensor (`x * 2`, `gt(x, 0.5)`, `masked_fill(x, m, -1e9)`),
/// like PyTorch's Python scalars: it keeps whether it was written as a bool, an integer or a
/// floating value, which decides promotion (see the table above). Converts implicitly from any
/// C++ arithmetic value.
class Scalar {
 public:
  ///@{
  /// Implicit from a bool (kind b8), any integer type (i64) or any floating type (f64).
  Scalar(bool v) : kind_(DType::b8), i_(v), d_(v) {}
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  Scalar(T v) : kind_(DType::i64), i_(static_cast<int64_t>(v)), d_(static_cast<double>(v)) {}
  template <std::floating_point T>
  Scalar(T v) : kind_(DType::f64), i_(0), d_(static_cast<double>(v)) {}
  ///@}

  /// b8, i64 or f64: the dtype the value was written in (its category).
  DType kind() const { return kind_; }
  /// Whether it was written as a floating value (then it promotes an integer tensor to float32).
  bool is_floating() const { return kind_ == DType::f64; }
  /// The value as double (an int64 beyond 2⁵³ is rounded; use to<int64_t>() for the exact value).
  double to_double() const { return d_; }
  /// The value as T: exact for an integer converted to int64 or bool.
  template <class T>
  T to() const {
    if constexpr (std::is_same_v<T, bool>) return kind_ == DType::f64 ? d_ != 0 : i_ != 0;
    else if constexpr (std::is_integral_v<T>) return kind_ == DType::f64 ? static_cast<T>(d_) : static_cast<T>(i_);
    else return kind_ == DType::f64 ? static_cast<T>(d_) : static_cast<T>(i_);
  }
  /// The value as text: "2", "2.5", "true".
  std::string to_string() const {
    if (kind_ == DType::b8) return i_ ? "true" : "false";
    if (kind_ == DType::i64) return std::to_string(i_);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", d_);
    return buf;
  }

 private:
  DType kind_;
  int64_t i_;
  double d_;
};

/// The dtype of `tensor op scalar`: the tensor's, unless the scalar's category is higher, then
/// that category's default (int64 for an integer, float32 for a floating scalar).
inline DType result_type(DType tensor, const Scalar& s) {
  if (dtype_category(s.kind()) <= dtype_category(tensor)) return tensor;
  return s.kind() == DType::f64 ? DType::f32 : s.kind();
}
/// The dtype of a binary op between tensors of dtypes `a` and `b` with ranks `rank_a`, `rank_b`:
/// promote_types, except that a 0-d tensor only promotes a tensor with dimensions of a lower
/// category (see the table above).
inline DType result_type(DType a, int64_t rank_a, DType b, int64_t rank_b) {
  if ((rank_a == 0) == (rank_b == 0)) return promote_types(a, b);
  const DType dim = rank_a == 0 ? b : a, zero = rank_a == 0 ? a : b;
  return dtype_category(zero) > dtype_category(dim) ? promote_types(dim, zero) : dim;
}

}  // namespace tapegrad
