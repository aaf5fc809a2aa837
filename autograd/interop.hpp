#pragma once
/// \file interop.hpp
/// Conversion between tapegrad tensors and xtensor arrays. Kept out of the widely included headers
/// so that only code that wants xtensor pays its compile time.
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// A tensor holding a copy of `a` (float, double or int64 elements).
template <class T>
Tensor from_xarray(const xt::xarray<T>& a) {
  Shape shape(a.shape().begin(), a.shape().end());
  Tensor t = Tensor::empty(shape, dtype_of<T>());
  std::copy(a.begin(), a.end(), t.template mutable_data<T>());
  return t;
}

/// A copy of the tensor as an xt::xarray<T>; T must match its dtype.
template <class T>
xt::xarray<T> to_xarray(const Tensor& t) {
  std::vector<size_t> shape(t.shape().begin(), t.shape().end());
  xt::xarray<T> out = xt::xarray<T>::from_shape(shape);
  std::copy(t.data<T>(), t.data<T>() + t.numel(), out.begin());
  return out;
}

}  // namespace tapegrad
