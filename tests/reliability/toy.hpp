#pragma once
// A toy classification problem and model shared by the reliability tests: three Gaussian blobs in
// 4-D, an MLP with dropout, and bitwise views of weights and histories.
#include <cstring>
#include <memory>
#include <vector>

#include "autograd/autograd.hpp"
#include "datasets/dataset.hpp"
#include "nn/nn.hpp"
#include "train/fit.hpp"

namespace tapegrad::testing {

/// n points per class (3 classes) in 4-D, drawn from Generator(seed); labels int64.
inline std::shared_ptr<datasets::TensorDataset> blobs(int64_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<double> xs;
  std::vector<int64_t> ys;
  for (int64_t i = 0; i < 3 * n; ++i) {
    const int64_t c = i % 3;
    for (int64_t k = 0; k < 4; ++k) xs.push_back((k == c ? 2.0 : 0.0) + 0.8 * gen.normal());
    ys.push_back(c);
  }
  return std::make_shared<datasets::TensorDataset>(tensor(xs, {3 * n, 4}), index_tensor(ys));
}

inline Tensor ce(const Tensor& logits, const Tensor& y) { return nn::functional::cross_entropy(logits, y); }

/// 4 → 16 → dropout(0.3) → 3, initialised from the default generator; dropout draws from `dropout_gen`.
inline std::shared_ptr<nn::Sequential> mlp(Generator& dropout_gen = default_generator()) {
  return std::make_shared<nn::Sequential>(nn::Linear(4, 16), nn::ReLU(), nn::Dropout(0.3, dropout_gen), nn::Linear(16, 3));
}

/// Every parameter's bytes, concatenated (bitwise comparison of weights).
inline std::vector<unsigned char> weight_bytes(const nn::Module& m) {
  std::vector<unsigned char> out;
  for (const auto& [name, t] : m.state_dict()) {
    const auto* p = reinterpret_cast<const unsigned char*>(t.data<char>());
    out.insert(out.end(), p, p + t.numel() * static_cast<int64_t>(dtype_size(t.dtype())));
  }
  return out;
}

/// Every value of every epoch (not the timings), bitwise, with the step counts.
inline std::vector<unsigned char> history_bytes(const train::History& h) {
  std::vector<unsigned char> out;
  auto put = [&](const void* p, size_t n) { out.insert(out.end(), static_cast<const unsigned char*>(p), static_cast<const unsigned char*>(p) + n); };
  for (const auto& e : h.epochs) {
    put(&e.epoch, sizeof e.epoch);
    put(&e.steps, sizeof e.steps);
    for (const auto& [k, v] : e.values) {
      put(k.data(), k.size());
      put(&v, sizeof v);
    }
  }
  put(&h.steps, sizeof h.steps);
  return out;
}

}  // namespace tapegrad::testing
