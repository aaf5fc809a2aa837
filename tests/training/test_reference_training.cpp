// End to end against PyTorch 1.13: the seed MLP (Adam) and the CNN of examples/mnist_cnn.cpp (SGD with
// momentum) take a few steps from fixed weights on fixed batches, and every loss and the final
// parameters must match the reference made by scripts/make_training_reference.py to float rounding.
// A wrong gradient (relu's mask, cross-entropy's 1/N, a Linear bias, a convolution weight or bias)
// moves them far beyond these tolerances. Adam is nearly blind to a gradient's scale (its step is
// m/√v), so errors of scale are caught by the CNN's SGD and by the float64 MLP; each such planted
// bug was seen to fail here (issue 14).
//
// Inputs and initial weights are not shared through a generator: both sides compute them from
// splitmix64 of (stream << 32 | index), as the script's docstring describes.
//
// Tolerances, |got − want| ≤ atol + rtol·|want|:
//  float32 (tapegrad's modules): 1e-5 relative on losses; 1e-5 absolute and relative on weights.
//    The two libraries sum in other orders (sgemm blocking, im2col vs direct convolution), which
//    perturbs activations and gradients by a few float32 ulps (~1e-7 relative, ~1e-6 at worst after
//    a 3136-term dot product). A step moves a weight by at most ~lr (1e-3 for Adam; SGD's steps here
//    are ~1e-4), so rounding leaves ~1e-8 on the weights (|w| ≤ 0.25; seen: 3e-8) and an ulp or two
//    on losses of ~2.3 (seen: 2.4e-7, one ulp), 1-4 % of the tolerance; a gradient wrong by a factor
//    moves a weight by a good part of a step, 1e-5 to 1e-3.
//  float64 (the same models in nn::functional over float64 leaves, since modules hold float32
//    parameters): 1e-10 both ways, where rounding leaves ~1e-15 (seen: 1.4e-15).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"
#include "nn/serialize.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;

namespace {

constexpr int64_t kSteps = 3, kBatch = 8;
constexpr uint64_t kImages = 0x1000, kLabels = 0x2000, kMlpStream = 0x100, kCnnStream = 0x200;
constexpr int64_t kFull = 4096, kSamples = 2048, kSampleStride = 1009;

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t top24(uint64_t stream, int64_t i) { return splitmix64((stream << 32) + static_cast<uint64_t>(i)) >> 40; }
/// u = m / 2^24 in [0, 1): exact in float32.
std::vector<double> uniform(uint64_t stream, int64_t n) {
  std::vector<double> u(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) u[i] = std::ldexp(static_cast<double>(top24(stream, i)), -24);
  return u;
}
Tensor images(int64_t step, DType dtype) {
  return tensor(uniform(kImages + step, kBatch * 28 * 28), {kBatch, 1, 28, 28}, dtype);
}
Tensor labels(int64_t step) {
  std::vector<int64_t> y;
  for (int64_t i = 0; i < kBatch; ++i) y.push_back(static_cast<int64_t>(top24(kLabels + step, i) % 10));
  return index_tensor(y);
}

struct ParamSpec {
  std::string name;
  Shape shape;
  int64_t fan_in;
};
const std::vector<ParamSpec> kMlpParams = {
    {"1.weight", {128, 784}, 784}, {"1.bias", {128}, 784}, {"3.weight", {10, 128}, 128}, {"3.bias", {10}, 128}};
const std::vector<ParamSpec> kCnnParams = {
    {"0.weight", {32, 1, 3, 3}, 9},  {"0.bias", {32}, 9},     {"3.weight", {64, 32, 3, 3}, 288}, {"3.bias", {64}, 288},
    {"7.weight", {128, 3136}, 3136}, {"7.bias", {128}, 3136}, {"9.weight", {10, 128}, 128},      {"9.bias", {10}, 128}};

/// Parameter k from stream base + k: (2u − 1)·2^−⌈log2(fan_in)/2⌉, exact in float32.
nn::NamedTensors initial_params(const std::vector<ParamSpec>& specs, uint64_t base, DType dtype) {
  nn::NamedTensors out;
  for (size_t k = 0; k < specs.size(); ++k) {
    const auto& s = specs[k];
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    const double bound = std::ldexp(1.0, -static_cast<int>(std::ceil(std::log2(static_cast<double>(s.fan_in)) / 2)));
    std::vector<double> w = uniform(base + k, n);
    for (double& v : w) v = (2 * v - 1) * bound;
    out.emplace_back(s.name, tensor(w, s.shape, dtype).requires_grad_());
  }
  return out;
}

std::vector<Tensor> tensors_of(const nn::NamedTensors& named) {
  std::vector<Tensor> out;
  for (const auto& [name, t] : named) out.push_back(t);
  return out;
}
const Tensor& param(const nn::NamedTensors& named, const std::string& name) {
  for (const auto& [n, t] : named)
    if (n == name) return t;
  throw std::out_of_range("no parameter " + name);
}

// The models as modules (float32) and the same computation in nn::functional (any dtype).
std::shared_ptr<nn::Sequential> mlp_module() {
  return std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
}
std::shared_ptr<nn::Sequential> cnn_module() {
  return std::make_shared<nn::Sequential>(
      nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::ReLU(), nn::MaxPool2d(2),
      nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
      nn::Linear(64 * 7 * 7, 128), nn::ReLU(), nn::Linear(128, 10));
}
Tensor mlp_functional(const nn::NamedTensors& p, const Tensor& x) {
  Tensor h = relu(F::linear(flatten(x, 1), param(p, "1.weight"), param(p, "1.bias")));
  return F::linear(h, param(p, "3.weight"), param(p, "3.bias"));
}
Tensor cnn_functional(const nn::NamedTensors& p, const Tensor& x) {
  Tensor h = F::max_pool2d(relu(F::conv2d(x, param(p, "0.weight"), param(p, "0.bias"), 1, 1)), 2);
  h = F::max_pool2d(relu(F::conv2d(h, param(p, "3.weight"), param(p, "3.bias"), 1, 1)), 2);
  h = relu(F::linear(flatten(h, 1), param(p, "7.weight"), param(p, "7.bias")));
  return F::linear(h, param(p, "9.weight"), param(p, "9.bias"));
}
std::unique_ptr<optim::Optimizer> mlp_optimizer(const nn::NamedTensors& p) {
  return std::make_unique<optim::Adam>(tensors_of(p), optim::AdamOptions(1e-3));
}
std::unique_ptr<optim::Optimizer> cnn_optimizer(const nn::NamedTensors& p) {
  return std::make_unique<optim::SGD>(tensors_of(p), optim::SGDOptions(0.05).momentum(0.9));
}

/// kSteps steps of `optimizer` on `forward`; returns each step's loss (before its update).
std::vector<double> train(const std::function<Tensor(const Tensor&)>& forward, optim::Optimizer& optimizer,
                          DType dtype) {
  std::vector<double> losses;
  for (int64_t step = 0; step < kSteps; ++step) {
    optimizer.zero_grad();
    Tensor loss = F::cross_entropy(forward(images(step, dtype)), labels(step));
    loss.backward();
    optimizer.step();
    losses.push_back(loss.item());
  }
  return losses;
}

const nn::NamedTensors& reference() {
  static const nn::NamedTensors ref =
      nn::load_safetensors(std::string(TAPEGRAD_TESTS_DIR) + "/training/reference_training.safetensors");
  return ref;
}
std::vector<double> ref_values(const std::string& name) { return param(reference(), name).to_vector(); }

struct Deviation {
  double worst = 0;  ///< max |got − want| / (atol + rtol·|want|): ≤ 1 passes
  double abs = 0;    ///< max |got − want|
};
void compare(const std::string& what, const std::vector<double>& got, const std::vector<double>& want, double atol,
             double rtol, Deviation& dev) {
  REQUIRE_MESSAGE(got.size() == want.size(), what);
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::abs(got[i] - want[i]);
    dev.abs = std::max(dev.abs, d);
    dev.worst = std::max(dev.worst, d / (atol + rtol * std::abs(want[i])));
    if (d > atol + rtol * std::abs(want[i])) {
      FAIL_CHECK(what << "[" << i << "] = " << got[i] << ", PyTorch " << want[i] << " (|diff| " << d << ")");
      return;  // one message per tensor
    }
  }
}

/// Compares the losses and every final parameter (in full, or sampled plus the sum of squared
/// updates) with the reference under `prefix` ("mlp.f32.").
void check_against_reference(const std::string& prefix, const std::vector<double>& losses,
                             const nn::NamedTensors& initial, const nn::NamedTensors& final_params, double atol,
                             double rtol) {
  Deviation loss_dev, weight_dev;
  compare(prefix + "loss", losses, ref_values(prefix + "loss"), 0, rtol, loss_dev);
  for (const auto& [name, t] : final_params) {
    const std::vector<double> w = t.to_vector();
    if (t.numel() <= kFull) {
      compare(prefix + name, w, ref_values(prefix + name), atol, rtol, weight_dev);
      continue;
    }
    std::vector<double> sample;
    for (int64_t k = 0; k < kSamples; ++k) sample.push_back(w[static_cast<size_t>((k * kSampleStride) % t.numel())]);
    compare(prefix + name + ".sample", sample, ref_values(prefix + name + ".sample"), atol, rtol, weight_dev);
    const std::vector<double> w0 = param(initial, name).to_vector();
    double update_sq = 0;
    for (size_t i = 0; i < w.size(); ++i) update_sq += (w[i] - w0[i]) * (w[i] - w0[i]);
    compare(prefix + name + ".update_sq", {update_sq}, ref_values(prefix + name + ".update_sq"), 0, rtol, weight_dev);
  }
  MESSAGE(prefix << " max deviation: losses " << loss_dev.abs << " (" << loss_dev.worst
                 << " of the tolerance), weights " << weight_dev.abs << " (" << weight_dev.worst
                 << " of the tolerance)");
}

nn::NamedTensors detached(const nn::NamedTensors& named) {
  nn::NamedTensors out;
  for (const auto& [name, t] : named) out.emplace_back(name, t.detach().clone());
  return out;
}

/// float32, through the modules: the initial weights are loaded by PyTorch's names.
void check_module(const std::string& model_name, const std::shared_ptr<nn::Sequential>& model,
                  const std::vector<ParamSpec>& specs, uint64_t base,
                  std::unique_ptr<optim::Optimizer> (*make_optimizer)(const nn::NamedTensors&)) {
  const nn::NamedTensors initial = initial_params(specs, base, DType::f32);
  model->load_state_dict(initial);
  auto optimizer = make_optimizer(model->named_parameters());
  const auto losses = train([&](const Tensor& x) { return model->forward(x); }, *optimizer, DType::f32);
  check_against_reference(model_name + ".f32.", losses, initial, model->named_parameters(), 1e-5, 1e-5);
}

/// float64, through nn::functional over float64 leaves.
void check_functional(const std::string& model_name, Tensor (*forward)(const nn::NamedTensors&, const Tensor&),
                      const std::vector<ParamSpec>& specs, uint64_t base,
                      std::unique_ptr<optim::Optimizer> (*make_optimizer)(const nn::NamedTensors&)) {
  const nn::NamedTensors params = initial_params(specs, base, DType::f64), initial = detached(params);
  auto optimizer = make_optimizer(params);
  const auto losses = train([&](const Tensor& x) { return forward(params, x); }, *optimizer, DType::f64);
  check_against_reference(model_name + ".f64.", losses, initial, params, 1e-10, 1e-10);
}

}  // namespace

TEST_CASE("the inputs are PyTorch's: the labels of every step match the reference's") {
  const std::vector<double> want = ref_values("labels");
  std::vector<double> got;
  for (int64_t step = 0; step < kSteps; ++step)
    for (double v : labels(step).to_vector()) got.push_back(v);
  CHECK(got == want);
}

TEST_CASE("seed MLP, 3 Adam steps from fixed weights, float32 modules: losses and weights match PyTorch") {
  check_module("mlp", mlp_module(), kMlpParams, kMlpStream, mlp_optimizer);
}

TEST_CASE("seed MLP, 3 Adam steps from fixed weights, float64 functional: losses and weights match PyTorch") {
  check_functional("mlp", mlp_functional, kMlpParams, kMlpStream, mlp_optimizer);
}

TEST_CASE(
    "mnist_cnn's CNN, 3 SGD momentum steps from fixed weights, float32 modules: losses and weights match PyTorch") {
  check_module("cnn", cnn_module(), kCnnParams, kCnnStream, cnn_optimizer);
}

TEST_CASE(
    "mnist_cnn's CNN, 3 SGD momentum steps from fixed weights, float64 functional: losses and weights match PyTorch") {
  check_functional("cnn", cnn_functional, kCnnParams, kCnnStream, cnn_optimizer);
}
