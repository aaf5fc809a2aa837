#pragma once
/// \file options.hpp
/// The chainable setters of the layers' options structs (LinearOptions, Conv2dOptions, ...), in
/// the style of libtorch's TORCH_ARG and of tapegrad's optimizer options:
///
///     nn::Linear fc(nn::LinearOptions(784, 128).bias(false));
///     nn::Conv2d conv(nn::Conv2dOptions(1, 32, 3).stride(2).padding(1));

/// Declares a field `name_` of type T with default `init`, a setter `name(v)` returning the
/// struct (for chaining) and a getter `name()`. Leaves the struct's access at public.
#define TAPEGRAD_LAYER_ARG(T, name, init)   \
 public:                                    \
  auto& name(T v) {                         \
    name##_ = std::move(v);                 \
    return *this;                           \
  }                                         \
  const T& name() const { return name##_; } \
                                            \
 private:                                   \
  T name##_ = init;                         \
                                            \
 public:
