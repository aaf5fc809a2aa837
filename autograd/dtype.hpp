#pragma once
/// \file dtype.hpp
/// Element types and the library's exception types.
#include <cstdint>
#include <stdexcept>
#include <string>

namespace tapegrad {

/// float32 is the default; float64 is for gradient checking; int64 holds indices and class labels
/// (argmax, gather, index_select, one_hot, targets) and has no gradient.
enum class DType : uint8_t { f32, f64, i64 };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i64: return "int64";
  }
  return "?";
}
inline size_t dtype_size(DType d) { return d == DType::f32 ? 4 : 8; }
inline bool is_floating(DType d) { return d != DType::i64; }

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }

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

}  // namespace tapegrad
