#pragma once
/// \file layers.hpp
/// Layers: thin one-input modules (UnaryModule) over nn::functional. Each holds its parameters as
/// public Tensor members (registered by name) and its hyper-parameters by value; layers with
/// options take an options struct with chainable setters (libtorch's style), and keep a short
/// constructor for the common case:
///
///     nn::Linear a(784, 128);                                    // with bias
///     nn::Linear b(nn::LinearOptions(784, 128).bias(false));     // without
#include <string>

#include "autograd/functions.hpp"
#include "autograd/random.hpp"
#include "nn/functional.hpp"
#include "nn/module.hpp"
#include "nn/options.hpp"

namespace tapegrad::nn {

/// Linear's options: the sizes, and whether there is a bias (default true).
struct LinearOptions {
  /// Throws nothing; Linear checks the sizes.
  LinearOptions(int64_t in_features, int64_t out_features) : in_features_(in_features), out_features_(out_features) {}
  TAPEGRAD_LAYER_ARG(int64_t, in_features, 0)   ///< the input's last dimension
  TAPEGRAD_LAYER_ARG(int64_t, out_features, 0)  ///< the output's last dimension
  TAPEGRAD_LAYER_ARG(bool, bias, true)          ///< a learnable bias [out_features]
};

/// y = x·Wᵀ + b, W [out, in], b [out]. PyTorch's initialisation: W, b ~ U(−1/√in, 1/√in), drawn
/// from `gen`. Throws std::invalid_argument naming the layer and the size unless both are positive.
class Linear : public UnaryModule {
 public:
  /// Linear(LinearOptions(in_features, out_features)): with a bias.
  Linear(int64_t in_features, int64_t out_features, Generator& gen = default_generator());
  /// The layer LinearOptions describes (bias(false): no bias).
  explicit Linear(const LinearOptions& options, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override { return functional::linear(x, weight, bias); }
  std::string repr() const override;
  /// Re-draws the parameters from `gen`.
  void reset_parameters(Generator& gen = default_generator());
  Tensor weight;  ///< [out, in]
  Tensor bias;    ///< [out]; undefined with bias(false)
  int64_t in_features;   ///< the size of x's last dimension
  int64_t out_features;  ///< the size of y's last dimension
};

/// Merges dimensions start_dim..end_dim (default: all but the batch dimension). A view: no copy.
class Flatten : public UnaryModule {
 public:
  /// Flattens dimensions start_dim..end_dim (negative: from the end).
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim_(start_dim), end_dim_(end_dim) {}
  Tensor forward(const Tensor& x) override { return flatten(x, start_dim_, end_dim_); }
  std::string repr() const override { return "Flatten"; }

 private:
  int64_t start_dim_, end_dim_;
};

/// max(x, 0)
class ReLU : public UnaryModule {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
  std::string repr() const override { return "ReLU"; }
};
/// x for x > 0, slope·x otherwise.
class LeakyReLU : public UnaryModule {
 public:
  /// The slope for x ≤ 0.
  explicit LeakyReLU(double negative_slope = 0.01) : slope_(negative_slope) {}
  Tensor forward(const Tensor& x) override { return leaky_relu(x, slope_); }
  std::string repr() const override { return "LeakyReLU(" + std::to_string(slope_) + ")"; }

 private:
  double slope_;
};
/// 1 / (1 + e^−x)
class Sigmoid : public UnaryModule {
 public:
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
  std::string repr() const override { return "Sigmoid"; }
};
/// tanh(x)
class Tanh : public UnaryModule {
 public:
  Tensor forward(const Tensor& x) override { return tanh(x); }
  std::string repr() const override { return "Tanh"; }
};
/// GELU: x·Φ(x) (exact, the default) or its tanh approximation (GPT-2's); see tapegrad::gelu.
class GELU : public UnaryModule {
 public:
  /// The exact form by default, GeluApproximate::tanh for GPT-2's.
  explicit GELU(GeluApproximate approximate = GeluApproximate::none) : approximate_(approximate) {}
  Tensor forward(const Tensor& x) override { return gelu(x, approximate_); }
  std::string repr() const override { return approximate_ == GeluApproximate::tanh ? "GELU(approximate=tanh)" : "GELU"; }
  GeluApproximate approximate() const { return approximate_; }  ///< the form this layer computes

 private:
  GeluApproximate approximate_;
};
/// e^x / Σ e^x along `axis`.
class Softmax : public UnaryModule {
 public:
  /// Normalizes along `axis` (default: the last).
  explicit Softmax(int64_t axis = -1) : axis_(axis) {}
  Tensor forward(const Tensor& x) override { return softmax(x, axis_); }
  std::string repr() const override { return "Softmax"; }

 private:
  int64_t axis_;
};
/// x − log Σ e^x along `axis`.
class LogSoftmax : public UnaryModule {
 public:
  /// Normalizes along `axis` (default: the last).
  explicit LogSoftmax(int64_t axis = -1) : axis_(axis) {}
  Tensor forward(const Tensor& x) override { return log_softmax(x, axis_); }
  std::string repr() const override { return "LogSoftmax"; }

 private:
  int64_t axis_;
};

/// Dropout's options: the probability p of zeroing an element (default 0.5).
struct DropoutOptions {
  /// Implicit from p, so `Dropout(0.1)` and `Dropout(DropoutOptions(0.1))` read alike.
  DropoutOptions(double p = 0.5) : p_(p) {}  // NOLINT: implicit, as libtorch's
  TAPEGRAD_LAYER_ARG(double, p, 0.5)  ///< probability of zeroing an element, in [0, 1]
};

/// In training, zeroes elements with probability p and scales the rest by 1/(1 − p); the identity
/// in eval mode. Masks come from `gen` (the default generator unless given; it must outlive the
/// layer). Throws std::invalid_argument unless p is in [0, 1].
class Dropout : public UnaryModule {
 public:
  ///@{
  /// Dropout with probability p, masks drawn from `gen`.
  explicit Dropout(double p = 0.5, Generator& gen = default_generator());
  explicit Dropout(const DropoutOptions& options, Generator& gen = default_generator());
  ///@}
  Tensor forward(const Tensor& x) override { return functional::dropout(x, p_, is_training(), *gen_); }
  std::string repr() const override { return "Dropout(" + std::to_string(p_) + ")"; }

 private:
  double p_;
  Generator* gen_;
};

/// Embedding's options: the table's size.
struct EmbeddingOptions {
  /// A table of `num_embeddings` rows of `embedding_dim` values.
  EmbeddingOptions(int64_t num_embeddings, int64_t embedding_dim)
      : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {}
  TAPEGRAD_LAYER_ARG(int64_t, num_embeddings, 0)  ///< rows: valid indices are [0, num_embeddings)
  TAPEGRAD_LAYER_ARG(int64_t, embedding_dim, 0)   ///< the width of each row
};

/// A lookup table: int64 indices of any shape → rows of weight [num_embeddings, dim], W ~ N(0, 1)
/// drawn from `gen`. Throws std::invalid_argument unless both sizes are positive.
class Embedding : public UnaryModule {
 public:
  ///@{
  /// A table of num_embeddings × embedding_dim, drawn from `gen`.
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen = default_generator());
  explicit Embedding(const EmbeddingOptions& options, Generator& gen = default_generator());
  ///@}
  Tensor forward(const Tensor& indices) override { return functional::embedding(indices, weight); }
  std::string repr() const override;
  Tensor weight;  ///< [num_embeddings, embedding_dim]
};

}  // namespace tapegrad::nn
