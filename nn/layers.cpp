// Layer modules (constructors and initialisation) and the small functional ops dropout and embedding.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "autograd/node.hpp"
#include "nn/conv.hpp"
#include "nn/init.hpp"
#include "nn/layers.hpp"
#include "nn/norm.hpp"

namespace tapegrad::nn {

// ---- functional ----------------------------------------------------------------------------------

Tensor functional::dropout(const Tensor& x, double p, bool training, Generator& gen) {
  if (!x.defined()) throw std::invalid_argument("tapegrad::nn::dropout: input is undefined");
  // Checked here, in evaluation too, so the error names dropout (not the mask's initialiser).
  if (!is_floating(x.dtype()))
    throw DTypeError(std::string("tapegrad::nn::dropout: expected a floating input (float32, float64), got ") +
                     dtype_name(x.dtype()) + " " + to_string(x.shape()));
  if (!(p >= 0 && p <= 1)) throw std::invalid_argument("tapegrad::nn::dropout: p must be in [0, 1], got " + std::to_string(p));
  if (!training || p == 0) return x;
  Tensor mask = Tensor::empty(x.shape(), x.dtype());
  const double scale = p == 1 ? 0.0 : 1.0 / (1.0 - p);
  auto fill = [&](auto z) {
    using T = decltype(z);
    T* m = mask.mutable_data<T>();
    for (int64_t i = 0; i < mask.numel(); ++i) m[i] = gen.uniform() >= p ? static_cast<T>(scale) : T(0);
  };
  if (x.dtype() == DType::f32) fill(float{});
  else fill(double{});
  return mul(x, mask);
}

Tensor functional::embedding(const Tensor& indices, const Tensor& weight) {
  if (!indices.defined() || !weight.defined()) throw std::invalid_argument("tapegrad::nn::embedding: got an undefined tensor");
  if (weight.dim() != 2) throw ShapeError("tapegrad::nn::embedding: weight must be [V, D], got " + to_string(weight.shape()));
  if (indices.dtype() != DType::i64)
    throw DTypeError("tapegrad::nn::embedding: indices must be int64, got " + std::string(dtype_name(indices.dtype())));
  const int64_t* idx = indices.data<int64_t>();
  for (int64_t i = 0; i < indices.numel(); ++i)
    if (idx[i] < 0 || idx[i] >= weight.size(0))
      throw ShapeError("tapegrad::nn::embedding: index " + std::to_string(idx[i]) + " at position " + std::to_string(i) +
                       " is outside the table of " + std::to_string(weight.size(0)) + " rows [0, " +
                       std::to_string(weight.size(0)) + ")");
  Shape out = indices.shape();
  out.push_back(weight.size(1));
  return reshape(index_select(weight, 0, reshape(indices, {indices.numel()})), out);
}

// ---- layers --------------------------------------------------------------------------------------

namespace {
/// PyTorch's default for Linear and Conv: W ~ kaiming_uniform(a = √5) = U(±1/√fan_in), b ~ U(±1/√fan_in).
void torch_default_init(const Tensor& weight, const Tensor& bias, Generator& gen) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, init::Nonlinearity::leaky_relu, gen);
  if (bias.defined()) {
    const double b = 1.0 / std::sqrt(static_cast<double>(init::fans(weight).first));
    init::uniform_(bias, -b, b, gen);
  }
}

void check_positive(const char* layer, std::initializer_list<int64_t> sizes) {
  for (int64_t s : sizes)
    if (s <= 0) throw std::invalid_argument(std::string("tapegrad::nn::") + layer + ": sizes must be positive, got " + std::to_string(s));
}
}  // namespace

Linear::Linear(int64_t in, int64_t out, Generator& gen) : Linear(LinearOptions(in, out), gen) {}

Linear::Linear(const LinearOptions& o, Generator& gen) : in_features(o.in_features()), out_features(o.out_features()) {
  check_positive("Linear", {in_features, out_features});
  weight = register_parameter("weight", Tensor::empty({out_features, in_features}));
  if (o.bias()) bias = register_parameter("bias", Tensor::empty({out_features}));
  reset_parameters(gen);
}

void Linear::reset_parameters(Generator& gen) {
  NoGradGuard no_grad;
  torch_default_init(weight, bias, gen);
}

std::string Linear::repr() const {
  return "Linear(" + std::to_string(in_features) + " → " + std::to_string(out_features) + ")";
}

Dropout::Dropout(double p, Generator& gen) : Dropout(DropoutOptions(p), gen) {}

Dropout::Dropout(const DropoutOptions& o, Generator& gen) : p_(o.p()), gen_(&gen) {
  if (!(p_ >= 0 && p_ <= 1))
    throw std::invalid_argument("tapegrad::nn::Dropout: p must be in [0, 1], got " + std::to_string(p_));
}

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen) : Embedding(EmbeddingOptions(num, dim), gen) {}

Embedding::Embedding(const EmbeddingOptions& o, Generator& gen) {
  check_positive("Embedding", {o.num_embeddings(), o.embedding_dim()});
  weight = register_parameter("weight", init::normal_(Tensor::empty({o.num_embeddings(), o.embedding_dim()}), 0.0, 1.0, gen));
}

std::string Embedding::repr() const {
  return "Embedding(" + std::to_string(weight.size(0)) + ", " + std::to_string(weight.size(1)) + ")";
}

Conv2d::Conv2d(int64_t in, int64_t out, functional::Size2 kernel, Generator& gen)
    : Conv2d(Conv2dOptions(in, out, kernel), gen) {}

Conv2d::Conv2d(const Conv2dOptions& o, Generator& gen) : options(o) {
  const functional::Size2 k = o.kernel_size(), s = o.stride(), p = o.padding(), d = o.dilation();
  check_positive("Conv2d", {o.in_channels(), o.out_channels(), k.h, k.w});
  for (auto [what, v] : {std::pair{"stride", s.h}, {"stride", s.w}, {"dilation", d.h}, {"dilation", d.w}})
    if (v <= 0) throw std::invalid_argument(std::string("tapegrad::nn::Conv2d: ") + what + " must be positive, got " + std::to_string(v));
  if (p.h < 0 || p.w < 0)
    throw std::invalid_argument("tapegrad::nn::Conv2d: padding must be >= 0, got " + std::to_string(std::min(p.h, p.w)));
  weight = register_parameter("weight", Tensor::empty({o.out_channels(), o.in_channels(), k.h, k.w}));
  if (o.bias()) bias = register_parameter("bias", Tensor::empty({o.out_channels()}));
  NoGradGuard no_grad;
  torch_default_init(weight, bias, gen);
}

std::string Conv2d::repr() const {
  return "Conv2d(" + std::to_string(options.in_channels()) + " → " + std::to_string(options.out_channels()) + ", " +
         std::to_string(options.kernel_size().h) + "×" + std::to_string(options.kernel_size().w) + ")";
}

BatchNorm::BatchNorm(const char* name, std::vector<int64_t> input_dims, const BatchNormOptions& o)
    : name_(name), input_dims_(std::move(input_dims)), num_features_(o.num_features()), eps_(o.eps()),
      momentum_(o.momentum()) {
  check_positive(name, {num_features_});
  if (o.affine()) {
    weight = register_parameter("weight", ones({num_features_}));
    bias = register_parameter("bias", zeros({num_features_}));
  }
  if (o.track_running_stats()) {
    running_mean = register_buffer("running_mean", zeros({num_features_}));
    running_var = register_buffer("running_var", ones({num_features_}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::i64));
  }
}

Tensor BatchNorm::forward(const Tensor& x) {
  if (!x.defined() || std::find(input_dims_.begin(), input_dims_.end(), x.dim()) == input_dims_.end() ||
      x.size(1) != num_features_) {
    std::string dims;
    for (int64_t d : input_dims_) dims += (dims.empty() ? "" : " or ") + std::to_string(d) + "-D";
    throw ShapeError(std::string("tapegrad::nn::") + name_ + "(" + std::to_string(num_features_) + "): expects a " + dims +
                     " input with " + std::to_string(num_features_) + " channels in dimension 1, got " +
                     (x.defined() ? to_string(x.shape()) : std::string("an undefined tensor")));
  }
  if (is_training() && num_batches_tracked.defined()) num_batches_tracked.mutable_data<int64_t>()[0] += 1;
  return functional::batch_norm(x, running_mean, running_var, weight, bias, is_training(), momentum_, eps_);
}

LayerNorm::LayerNorm(const LayerNormOptions& o) : normalized_shape_(o.normalized_shape()), eps_(o.eps()) {
  if (normalized_shape_.empty()) throw std::invalid_argument("tapegrad::nn::LayerNorm: normalized_shape is empty");
  for (int64_t s : normalized_shape_) check_positive("LayerNorm", {s});
  if (o.elementwise_affine()) {
    weight = register_parameter("weight", ones(normalized_shape_));
    if (o.bias()) bias = register_parameter("bias", zeros(normalized_shape_));
  }
}

}  // namespace tapegrad::nn
