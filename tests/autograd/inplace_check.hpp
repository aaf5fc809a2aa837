// Shared by the autograd and nn tests: the in-place-write check over every registered op.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"

struct InplaceWriteCounts {
  int refused = 0;     // the engine refused the backward (the op saved the written input)
  int unaffected = 0;  // the backward ran and every gradient equals the one without the write
};

/// For each registered sample and each input: run the op, overwrite that input in place,
/// backpropagate a fixed random seed. Either the engine refuses (the op saved it) or every
/// gradient equals the one computed without the write (the op's backward never reads it). A
/// backward that read a tensor it did not save would fail here.
inline InplaceWriteCounts check_inplace_writes_on_registry() {
  using namespace tapegrad;
  InplaceWriteCounts counts;
  for (const OpInfo& op : op_registry()) {
    for (const OpSample& sample : op.samples()) {
      for (size_t target = 0; target < sample.inputs.size(); ++target) {
        if (!sample.inputs[target].defined()) continue;
        INFO(op.name << " / " << sample.description << " / input " << target);
        auto fresh = [&] {
          std::vector<Tensor> in;
          for (const Tensor& t : sample.inputs) {
            if (!t.defined()) { in.push_back(t); continue; }
            Tensor c = t.detach().clone();
            if (t.requires_grad()) c.requires_grad_();
            in.push_back(c);
          }
          return in;
        };
        auto backprop = [&](std::vector<Tensor>& in, bool write) {
          Tensor out = op.fn(in);
          if (!out.requires_grad()) return std::vector<Tensor>{};
          Generator gen(7);
          Tensor seed = randn(out.shape(), out.dtype(), gen);
          if (write) {
            Tensor& t = in[target];
            if (t.dtype() == DType::i64) {
              std::fill_n(t.mutable_data<int64_t>(), t.numel(), 0);  // still a valid index
            } else if (t.dtype() == DType::b8) {
              bool* p = t.mutable_data<bool>();  // a mask: flip it
              for (int64_t i = 0; i < t.numel(); ++i) p[i] = !p[i];
            } else if (t.dtype() == DType::f32) {
              float* p = t.mutable_data<float>();
              for (int64_t i = 0; i < t.numel(); ++i) p[i] = p[i] * 1.5f + 0.25f;
            } else {
              double* p = t.mutable_data<double>();
              for (int64_t i = 0; i < t.numel(); ++i) p[i] = p[i] * 1.5 + 0.25;
            }
          }
          out.backward(seed);
          std::vector<Tensor> grads;
          for (const Tensor& t : in) grads.push_back(t.defined() && t.requires_grad() ? t.grad() : Tensor());
          return grads;
        };
        std::vector<Tensor> clean_in = fresh();
        std::vector<Tensor> clean = backprop(clean_in, false);
        if (clean.empty()) continue;
        std::vector<Tensor> written_in = fresh();
        try {
          std::vector<Tensor> written = backprop(written_in, true);
          for (size_t k = 0; k < clean.size(); ++k) {
            REQUIRE(clean[k].defined() == written[k].defined());
            if (clean[k].defined()) CHECK(clean[k].to_vector() == written[k].to_vector());
          }
          ++counts.unaffected;
        } catch (const AutogradError& e) {
          CHECK(std::string(e.what()).find("modified in place") != std::string::npos);
          ++counts.refused;
        }
      }
    }
  }
  return counts;
}
