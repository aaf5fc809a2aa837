#pragma once
// Converts a module's floating parameters and buffers to another dtype in place: each handle keeps
// its identity (optimizers and typed members still see it) and gets new storage. For float64 checks
// of modules that are built in float32; it stands in for Module::to(DType) (issue 10) until that lands.
#include "autograd/node.hpp"
#include "nn/module.hpp"

namespace tapegrad::testing {

inline void convert_dtype(nn::Module& m, DType dtype) {
  NoGradGuard no_grad;
  for (auto& [name, t] : m.state_dict()) {
    if (!is_floating(t.dtype()) || t.dtype() == dtype) continue;
    Tensor c = t.detach().to(dtype);
    TensorImpl& impl = *t.impl();
    impl.storage = c.impl()->storage;
    impl.offset = c.impl()->offset;
    impl.dtype = dtype;
  }
}

}  // namespace tapegrad::testing
