// Error handling: one negative case per public op, layer, loss, optimizer option and loader. Each
// asserts the exception type and that the message names the operation and the offending values;
// after each error, no storage is leaked and the tape and a model still train exactly as before.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "autograd/storage.hpp"
#include "datasets/datasets.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"
#include "train/fit.hpp"
#include "train/run_state.hpp"

using namespace tapegrad;
namespace F = nn::functional;

namespace {

// One gradient step of a fixed model on fixed data: the "still usable" probe. Returns the bytes of
// the gradients, which must be the same after every error as before the first one.
std::vector<double> probe() {
  Generator gen(1);
  nn::Sequential model(nn::Linear(3, 4, gen), nn::ReLU(), nn::Linear(4, 2, gen));
  Tensor x = randn({5, 3}, DType::f32, gen);
  Tensor loss = F::cross_entropy(model(x), index_tensor({0, 1, 1, 0, 1}));
  loss.backward();
  std::vector<double> out{loss.item()};
  for (const Tensor& p : model.parameters())
    for (double v : p.grad().to_vector()) out.push_back(v);
  return out;
}

enum class Kind { shape, dtype, autograd, invalid, range, runtime, dataset };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::shape: return "ShapeError";
    case Kind::dtype: return "DTypeError";
    case Kind::autograd: return "AutogradError";
    case Kind::invalid: return "std::invalid_argument";
    case Kind::range: return "std::out_of_range";
    case Kind::runtime: return "std::runtime_error";
    case Kind::dataset: return "DatasetError";
  }
  return "?";
}

// Which kind an exception is (most derived first).
Kind kind_of(const std::exception& e) {
  if (dynamic_cast<const ShapeError*>(&e)) return Kind::shape;
  if (dynamic_cast<const DTypeError*>(&e)) return Kind::dtype;
  if (dynamic_cast<const AutogradError*>(&e)) return Kind::autograd;
  if (dynamic_cast<const datasets::DatasetError*>(&e)) return Kind::dataset;
  if (dynamic_cast<const std::invalid_argument*>(&e)) return Kind::invalid;
  if (dynamic_cast<const std::out_of_range*>(&e)) return Kind::range;
  return Kind::runtime;
}

struct Case {
  std::string what;             // the function under test
  Kind kind;                    // the exception type expected
  std::vector<std::string> has; // fragments the message must contain: the op and the values
  std::function<void()> call;
};

void run_cases(const std::vector<Case>& cases) {
  const std::vector<double> reference = probe();
  for (const Case& c : cases) {
    CAPTURE(c.what);
    const int64_t live = storage_stats().live_bytes;
    std::string message;
    Kind got = Kind::runtime;
    bool threw = false;
    try {
      c.call();
    } catch (const std::exception& e) {
      threw = true;
      message = e.what();
      got = kind_of(e);
    }
    CAPTURE(message);
    REQUIRE_MESSAGE(threw, c.what << " did not throw");
    CHECK_MESSAGE(got == c.kind, c.what << " threw " << std::string(kind_name(got)) << ", expected " << std::string(kind_name(c.kind)));
    for (const std::string& fragment : c.has) CHECK_MESSAGE(message.find(fragment) != std::string::npos, "missing '" << fragment << "'");
    CHECK(storage_stats().live_bytes == live);  // nothing leaked on the error path
    CHECK(probe() == reference);                // the tape and a model still work as before
  }
}

// A Tensor with static storage duration on purpose: it is destroyed after the main thread's
// storage pool, which was a heap-use-after-free at exit (caught under ASan, make test-sanitize).
const Tensor a23 = tensor({1, 2, 3, 4, 5, 6}, {2, 3});

}  // namespace

TEST_CASE("elementwise and comparison ops reject bad shapes, dtypes and arguments") {
  Tensor a = randn({2, 3}), b = randn({4}), d = randn({2, 3}, DType::f64);
  run_cases({
      {"add", Kind::shape, {"add", "[2, 3]", "[4]"}, [&] { add(a, b); }},
      {"sub of bool tensors", Kind::dtype, {"sub", "bool [2, 3]", "logical_not"}, [&] { sub(gt(a, 0.0), gt(d, 0.0)); }},
      {"mul", Kind::shape, {"mul", "[2, 3]", "[4]"}, [&] { mul(a, b); }},
      {"div by a 0 scalar", Kind::invalid, {"div", "0"}, [&] { div(a, 0.0); }},
      {"pow", Kind::shape, {"pow", "[2, 3]", "[4]"}, [&] { pow(a, b); }},
      {"maximum", Kind::shape, {"maximum", "[4]"}, [&] { maximum(a, b); }},
      {"minimum", Kind::shape, {"minimum", "[2, 3]", "[4]"}, [&] { minimum(a, b); }},
      {"add undefined", Kind::invalid, {"add", "undefined"}, [&] { add(a, Tensor()); }},
      {"softplus", Kind::invalid, {"softplus", "beta", "-1"}, [&] { softplus(a, -1.0); }},
      {"clamp", Kind::invalid, {"clamp", "min=2", "max=1"}, [&] { clamp(a, 2.0, 1.0); }},
      {"where", Kind::shape, {"where", "[4]"}, [&] { where(gt(a, 0.0), a, b); }},
      {"gt", Kind::shape, {"gt", "[2, 3]", "[4]"}, [&] { gt(a, b); }},
      {"where on a float condition", Kind::dtype, {"where", "must be bool", "float32"}, [&] { where(a, a, d); }},
      {"exp of int64", Kind::dtype, {"exp", "int64"}, [&] { exp(index_tensor({1, 2})); }},
  });
}

TEST_CASE("dtype, selection, sorting and sampling ops reject bad dtypes, shapes and arguments") {
  Tensor a = randn({2, 3}), m = ones({2, 3}, DType::b8), i = index_tensor({4, 0});
  Generator gen(3);
  run_cases({
      {"masked_fill with a float mask", Kind::dtype, {"masked_fill", "must be bool", "float32 [2, 3]"}, [&] { masked_fill(a, a, 0.0); }},
      {"masked_fill mask too large", Kind::shape, {"masked_fill", "[2, 3]", "[3]"}, [&] { masked_fill(randn({3}), m, 0.0); }},
      {"floor_divide by an int64 0", Kind::invalid, {"floor_divide", "division by zero"}, [&] { floor_divide(i, i); }},
      {"remainder of bool", Kind::dtype, {"remainder", "bool"}, [&] { remainder(m, m); }},
      {"neg of bool", Kind::dtype, {"neg", "bool"}, [&] { neg(m); }},
      {"logical_and shapes", Kind::shape, {"logical_and", "[2, 3]", "[2]"}, [&] { logical_and(m, i); }},
      {"mean of int64", Kind::dtype, {"mean", "int64"}, [&] { mean(i); }},
      {"requires_grad_ on bool", Kind::dtype, {"requires_grad_", "bool"}, [&] { zeros({2}, DType::b8).requires_grad_(); }},
      {"tril of 1-D", Kind::shape, {"tril", "[2]"}, [&] { tril(i); }},
      {"cumsum axis", Kind::shape, {"cumsum", "axis 2"}, [&] { cumsum(a, 2); }},
      {"sort axis", Kind::shape, {"sort", "axis -3"}, [&] { sort(a, -3); }},
      {"topk k", Kind::shape, {"topk", "k = 4", "[2, 3]"}, [&] { topk(a, 4); }},
      {"arange of bool", Kind::dtype, {"arange", "bool"}, [&] { arange(0, 2, 1, DType::b8); }},
      {"multinomial negative weight", Kind::invalid, {"multinomial", "-1"}, [&] { multinomial(tensor({1, -1}), 1, true, gen); }},
      {"multinomial without replacement", Kind::invalid, {"multinomial", "3 samples", "2 categories"},
       [&] { multinomial(tensor({1, 1}), 3, false, gen); }},
  });
}

TEST_CASE("reductions, linear algebra and softmax reject bad axes and shapes") {
  Tensor a = randn({2, 3}), e = zeros({0, 3});
  run_cases({
      {"sum axis", Kind::shape, {"sum", "axis 5", "rank 2"}, [&] { sum(a, {5}); }},
      {"sum repeated axis", Kind::shape, {"sum", "repeated axis"}, [&] { sum(a, {0, 0}); }},
      {"mean of nothing", Kind::shape, {"mean", "[0, 3]"}, [&] { mean(e, {0}); }},
      {"max of an empty axis", Kind::shape, {"max", "axis 0"}, [&] { max(e, {0}); }},
      {"var correction", Kind::shape, {"var", "2 elements", "correction 3"}, [&] { var(a, {0}, 3); }},
      {"logsumexp axis", Kind::shape, {"logsumexp", "axis -3"}, [&] { logsumexp(a, {-3}); }},
      {"argmax empty", Kind::shape, {"argmax", "[0, 3]"}, [&] { argmax(e, 0); }},
      {"sum_to", Kind::shape, {"sum_to", "[2, 3]", "[4]"}, [&] { sum_to(a, {4}); }},
      {"matmul", Kind::shape, {"matmul", "[2, 3]", "[2, 3]"}, [&] { matmul(a, a); }},
      {"gemm", Kind::shape, {"gemm", "[3]"}, [&] { gemm(a, randn({3})); }},
      {"softmax axis", Kind::shape, {"softmax", "axis 2"}, [&] { softmax(a, 2); }},
      {"log_softmax axis", Kind::shape, {"log_softmax", "axis -3", "rank 2"}, [&] { log_softmax(a, -3); }},
  });
}

TEST_CASE("shape ops reject impossible views, indices and concatenations") {
  Tensor a = randn({2, 3});
  run_cases({
      {"reshape", Kind::shape, {"reshape", "[2, 3]", "[4]"}, [&] { reshape(a, {4}); }},
      {"reshape two -1", Kind::shape, {"reshape", "more than one -1"}, [&] { reshape(a, {-1, -1}); }},
      {"flatten", Kind::shape, {"flatten", "start_dim 1 > end_dim 0"}, [&] { flatten(a, 1, 0); }},
      {"transpose", Kind::shape, {"transpose", "5"}, [&] { transpose(a, 0, 5); }},
      {"permute", Kind::shape, {"permute", "3 dims", "[2, 3]"}, [&] { permute(a, {0, 1, 2}); }},
      {"squeeze", Kind::shape, {"squeeze", "dimension 0", "[2, 3]"}, [&] { squeeze(a, 0); }},
      {"unsqueeze", Kind::shape, {"unsqueeze", "7"}, [&] { unsqueeze(a, 7); }},
      {"expand", Kind::shape, {"expand", "[2, 3]", "[4, 3]"}, [&] { expand(a, {4, 3}); }},
      {"slice step", Kind::shape, {"slice", "step", "0"}, [&] { slice(a, 0, 0, 1, 0); }},
      {"cat", Kind::shape, {"cat", "tensor 1", "[3, 2]"}, [&] { cat({a, randn({3, 2})}, 0); }},
      {"stack", Kind::shape, {"stack", "tensor 1", "[3]"}, [&] { stack({a, randn({3})}); }},
      {"index_select range", Kind::shape, {"index_select", "index 7", "dim 0"}, [&] { index_select(a, 0, index_tensor({7})); }},
      {"index_select dtype", Kind::dtype, {"index_select", "int64", "float32"}, [&] { index_select(a, 0, randn({1})); }},
      {"gather", Kind::shape, {"gather", "index 9"}, [&] { gather(a, 1, index_tensor({9, 0}, {2, 1})); }},
      {"scatter_add", Kind::shape, {"scatter_add", "[2, 2]"}, [&] { scatter_add({2, 3}, 1, index_tensor({0, 0}, {2, 1}), randn({2, 2})); }},
      {"index_add", Kind::shape, {"index_add", "index 5"}, [&] { index_add({2, 3}, 0, index_tensor({5}), randn({1, 3})); }},
      {"one_hot", Kind::shape, {"one_hot", "label 4", "position 1"}, [&] { one_hot(index_tensor({0, 4}), 3); }},
  });
}

TEST_CASE("tensor creation, access and autograd misuse are named errors") {
  run_cases({
      {"tensor", Kind::shape, {"tensor", "3 values", "[2, 2]"}, [&] { tensor({1, 2, 3}, {2, 2}); }},
      {"index_tensor", Kind::shape, {"index_tensor", "3 values", "[2]"}, [&] { index_tensor({1, 2, 3}, {2}); }},
      {"empty", Kind::shape, {"empty", "[2, -1]"}, [&] { Tensor::empty({2, -1}); }},
      {"arange", Kind::invalid, {"arange", "step"}, [&] { arange(0, 5, 0); }},
      {"rand", Kind::invalid, {"rand", "low=2", "high=1"}, [&] { rand({2}, DType::f32, default_generator(), 2.0, 1.0); }},
      {"item", Kind::shape, {"item", "[2, 3]"}, [&] { a23.item(); }},
      {"at", Kind::shape, {"at", "index 5", "[2, 3]"}, [&] { a23.at({0, 5}); }},
      {"size of a 0-d tensor", Kind::shape, {"size", "rank 0"}, [&] { scalar(1.0).size(0); }},
      {"set_grad of another dtype", Kind::shape, {"set_grad", "(float64)", "(float32)"}, [&] {
         Tensor x = randn({2}).requires_grad_();
         x.set_grad(zeros({2}, DType::f64));
       }},
      {"data<T>", Kind::dtype, {"data", "float32"}, [&] { a23.data<double>(); }},
      {"requires_grad_ on int64", Kind::dtype, {"requires_grad_", "int64"}, [&] { index_tensor({1}).requires_grad_(); }},
      {"requires_grad_ on a non-leaf", Kind::autograd, {"requires_grad_", "'add_scalar'"}, [&] {
         Tensor x = randn({2}).requires_grad_();
         (x + 1.0).requires_grad_();
       }},
      {"backward twice", Kind::autograd, {"backward", "'sum'", "a second time"}, [&] {
         Tensor x = randn({2}).requires_grad_();
         Tensor y = sum(x * x);
         y.backward();
         y.backward();
       }},
      {"backward of a non-scalar", Kind::autograd, {"backward", "[2, 3]"}, [&] {
         Tensor x = randn({2, 3}).requires_grad_();
         (x * 2.0).backward();
       }},
      {"backward without a graph", Kind::autograd, {"backward", "require"}, [&] { randn({1}).backward(); }},
  });
}

TEST_CASE("layers reject inputs of the wrong shape and bad constructor arguments") {
  nn::Linear linear(4, 2);
  nn::Conv2d conv(3, 2, 3);
  nn::BatchNorm1d bn(4);
  nn::LayerNorm ln(Shape{4});
  nn::Embedding emb(5, 2);
  run_cases({
      {"Linear forward", Kind::shape, {"linear", "[3, 5]", "[2, 4]"}, [&] { linear(randn({3, 5})); }},
      {"Linear constructor", Kind::invalid, {"Linear", "-1"}, [&] { nn::Linear(-1, 2); }},
      {"Conv2d forward", Kind::shape, {"conv2d", "[1, 4, 8, 8]"}, [&] { conv(randn({1, 4, 8, 8})); }},
      {"Conv2d constructor", Kind::invalid, {"Conv2d", "0"}, [&] { nn::Conv2d(0, 2, 3); }},
      {"max_pool2d", Kind::shape, {"max_pool2d", "[1, 1, 2, 2]"}, [&] { F::max_pool2d(randn({1, 1, 2, 2}), 3); }},
      {"avg_pool2d", Kind::shape, {"avg_pool2d", "[2, 2]"}, [&] { F::avg_pool2d(randn({2, 2}), 2); }},
      {"BatchNorm1d forward", Kind::shape, {"BatchNorm1d", "[2, 3]", "4"}, [&] { bn(randn({2, 3})); }},
      {"LayerNorm forward", Kind::shape, {"layer_norm", "[2, 3]", "[4]"}, [&] { ln(randn({2, 3})); }},
      {"Embedding forward", Kind::shape, {"embedding", "index 7", "5 rows"}, [&] { emb(index_tensor({7})); }},
      {"Dropout p", Kind::invalid, {"Dropout", "1.5"}, [&] { nn::Dropout(1.5); }},
      {"dropout p", Kind::invalid, {"dropout", "-0.1"}, [&] { F::dropout(randn({2}), -0.1, true); }},
      {"dropout int64", Kind::dtype, {"dropout", "int64 [2]"}, [&] { F::dropout(index_tensor({1, 2}), 0.5, true); }},
      {"layer_norm int64", Kind::dtype, {"layer_norm", "int64 [1, 3]"}, [&] { F::layer_norm(index_tensor({1, 2, 3}, {1, 3}), {3}); }},
      {"layer_norm weight dtype", Kind::dtype, {"layer_norm", "float64", "float32"}, [&] {
         F::layer_norm(randn({2, 3}), {3}, ones({3}, DType::f64));
       }},
      {"load_state_dict", Kind::invalid, {"load_state_dict", "weight", "[2, 4]"}, [&] {
         linear.load_state_dict({{"weight", randn({4, 2})}, {"bias", randn({2})}});
       }},
  });
}

TEST_CASE("losses reject mismatched outputs and targets") {
  Tensor logits = randn({3, 4}), probs = rand({3, 4});
  run_cases({
      {"cross_entropy target dtype", Kind::dtype, {"cross_entropy", "int64", "float32"}, [&] { F::cross_entropy(logits, randn({3})); }},
      {"cross_entropy target range", Kind::shape, {"cross_entropy", "target 4", "[0, 4)"}, [&] { F::cross_entropy(logits, index_tensor({0, 1, 4})); }},
      {"cross_entropy batch", Kind::shape, {"cross_entropy", "[3, 4]", "[2]"}, [&] { F::cross_entropy(logits, index_tensor({0, 1})); }},
      {"nll_loss", Kind::shape, {"nll_loss", "[3, 4]", "[2]"}, [&] { F::nll_loss(logits, index_tensor({0, 1})); }},
      {"mse_loss", Kind::shape, {"mse_loss", "[3, 4]", "[4, 3]"}, [&] { F::mse_loss(logits, randn({4, 3})); }},
      {"half_mse_loss", Kind::shape, {"half_mse_loss", "[3, 4]", "[3]"}, [&] { F::half_mse_loss(logits, randn({3})); }},
      {"l1_loss", Kind::shape, {"l1_loss", "[3, 4]", "[2, 4]"}, [&] { F::l1_loss(logits, randn({2, 4})); }},
      {"huber_loss delta", Kind::invalid, {"huber_loss", "delta", "-1"}, [&] { F::huber_loss(logits, logits, F::Reduction::mean, -1.0); }},
      {"binary_cross_entropy", Kind::shape, {"binary_cross_entropy", "[3, 4]", "[4]"}, [&] { F::binary_cross_entropy(probs, rand({4})); }},
      {"binary_cross_entropy_with_logits", Kind::shape, {"binary_cross_entropy_with_logits", "[3, 4]", "[3, 1, 4]"},
       [&] { F::binary_cross_entropy_with_logits(logits, randn({3, 1, 4})); }},
      {"mse_loss mean of nothing", Kind::shape, {"mse_loss", "[0]", "zero elements"}, [&] { F::mse_loss(randn({0}), randn({0})); }},
      {"half_mse_loss of no samples", Kind::shape, {"half_mse_loss", "[0, 3]"}, [&] { F::half_mse_loss(randn({0, 3}), randn({0, 3})); }},
  });
}

TEST_CASE("optimizer options, schedulers and clipping validate their values") {
  Tensor w = randn({2}).requires_grad_();
  run_cases({
      {"SGD lr", Kind::invalid, {"SGD", "lr", "-1"}, [&] { optim::SGD({w}, optim::SGDOptions(-1)); }},
      {"SGD momentum", Kind::invalid, {"SGD", "momentum", "-0.5"}, [&] { optim::SGD({w}, optim::SGDOptions(0.1).momentum(-0.5)); }},
      {"SGD nesterov", Kind::invalid, {"SGD", "nesterov", "momentum=0", "dampening=0"}, [&] { optim::SGD({w}, optim::SGDOptions(0.1).nesterov(true)); }},
      {"SGD weight_decay", Kind::invalid, {"SGD", "weight_decay", "-1"}, [&] { optim::SGD({w}, optim::SGDOptions(0.1).weight_decay(-1)); }},
      {"Adam betas", Kind::invalid, {"Adam", "betas", "1.5"}, [&] { optim::Adam({w}, optim::AdamOptions().betas(1.5, 0.9)); }},
      {"Adam eps", Kind::invalid, {"Adam", "eps", "-1"}, [&] { optim::Adam({w}, optim::AdamOptions().eps(-1)); }},
      {"AdamW lr", Kind::invalid, {"AdamW", "lr", "-1"}, [&] { optim::AdamW({w}, optim::AdamWOptions(-1)); }},
      {"RMSprop alpha", Kind::invalid, {"RMSprop", "alpha", "-1"}, [&] { optim::RMSprop({w}, optim::RMSpropOptions().alpha(-1)); }},
      {"Adagrad lr_decay", Kind::invalid, {"Adagrad", "lr_decay", "-1"}, [&] { optim::Adagrad({w}, optim::AdagradOptions().lr_decay(-1)); }},
      {"optimizer over a non-leaf", Kind::invalid, {"SGD", "not a leaf"}, [&] { optim::SGD({w * 2.0}); }},
      {"optimizer twice the same", Kind::invalid, {"Adam", "twice"}, [&] { optim::Adam({w, w}); }},
      {"set_group_lr", Kind::invalid, {"SGD", "no parameter group 3"}, [&] { optim::SGD({w}).set_group_lr(3, 0.1); }},
      {"set_lr inf", Kind::invalid, {"SGD", "learning rate", "inf"}, [&] { optim::SGD({w}).set_lr(INFINITY); }},
      {"load_state_dict kind", Kind::invalid, {"Adam"}, [&] {
         optim::SGD sgd({w}, optim::SGDOptions(0.1).momentum(0.9));
         optim::Adam({w}).load_state_dict(sgd.state_dict());
       }},
      {"StepLR", Kind::invalid, {"StepLR", "step_size", "0"}, [&] {
         optim::SGD sgd({w});
         optim::StepLR(sgd, 0);
       }},
      {"ExponentialLR", Kind::invalid, {"ExponentialLR", "gamma", "-1"}, [&] {
         optim::SGD sgd({w});
         optim::ExponentialLR(sgd, -1.0);
       }},
      {"StepLR gamma", Kind::invalid, {"StepLR", "gamma", "-1"}, [&] {
         optim::SGD sgd({w});
         optim::StepLR(sgd, 1, -1.0);
       }},
      {"CosineAnnealingLR eta_min", Kind::invalid, {"CosineAnnealingLR", "eta_min", "-1"}, [&] {
         optim::SGD sgd({w});
         optim::CosineAnnealingLR(sgd, 2, -1.0);
       }},
      {"StepLR step overflows", Kind::invalid, {"StepLR::step", "group 0", "epoch 1", "inf"}, [&] {
         optim::SGD sgd({w}, optim::SGDOptions(1e300));
         optim::StepLR(sgd, 1, 1e10).step();
       }},
      {"clip_grad_norm_", Kind::invalid, {"clip_grad_norm_", "max_norm", "-1"}, [&] { optim::clip_grad_norm_({w}, -1.0); }},
      {"clip_grad_value_", Kind::invalid, {"clip_grad_value_", "-2"}, [&] { optim::clip_grad_value_({w}, -2.0); }},
  });
}

TEST_CASE("loaders, datasets and the training loop reject bad files and settings") {
  auto data = std::make_shared<datasets::TensorDataset>(randn({6, 2}), index_tensor({0, 1, 0, 1, 0, 1}));
  nn::Sequential model(nn::Linear(2, 2));
  optim::SGD sgd(model.parameters());
  auto ce = [](const Tensor& o, const Tensor& t) { return F::cross_entropy(o, t); };
  run_cases({
      {"read_idx missing", Kind::dataset, {"read_idx: cannot open 'no/such.idx'", "No such file or directory"}, [&] { datasets::read_idx("no/such.idx"); }},
      {"load_mnist missing", Kind::dataset, {"no/such/dir"}, [&] { datasets::load_mnist("no/such/dir", datasets::Split::train); }},
      {"load_safetensors missing", Kind::runtime, {"load_safetensors", "no/such.safetensors"}, [&] { nn::load_safetensors("no/such.safetensors"); }},
      {"load_run_state missing", Kind::runtime, {"no/such.ckpt"}, [&] { train::load_run_state("no/such.ckpt"); }},
      {"TensorDataset", Kind::invalid, {"TensorDataset", "3 samples", "2"}, [&] { datasets::TensorDataset(randn({3, 2}), index_tensor({0, 1})); }},
      {"TensorDataset::get", Kind::range, {"TensorDataset::get", "index 9", "[0, 6)"}, [&] { data->get({9}); }},
      {"Subset", Kind::range, {"Subset", "index 6"}, [&] { datasets::Subset(data, {6}); }},
      {"random_split", Kind::invalid, {"random_split", "fraction", "1.5"}, [&] { datasets::random_split(data, 1.5, 0); }},
      {"DataLoader batch_size", Kind::invalid, {"DataLoader", "batch_size", "0"}, [&] { datasets::DataLoader(data, {.batch_size = 0}); }},
      {"DataLoader::batch", Kind::range, {"DataLoader::batch", "5"}, [&] { datasets::DataLoader(data, {.batch_size = 4}).batch(5); }},
      {"fit batch_size", Kind::invalid, {"fit", "batch_size", "-2"}, [&] { train::fit(model, sgd, ce, data, {.batch_size = -2, .quiet = true}); }},
      {"fit epochs", Kind::invalid, {"fit", "epochs", "-1"}, [&] { train::fit(model, sgd, ce, data, {.epochs = -1, .quiet = true}); }},
      {"fit validation_split", Kind::invalid, {"fit", "validation_split", "1.5"}, [&] { train::fit(model, sgd, ce, data, {.validation_split = 1.5, .quiet = true}); }},
      {"evaluate batch_size", Kind::invalid, {"evaluate", "batch_size", "0"}, [&] { train::evaluate(model, ce, *data, 0); }},
      {"EarlyStopping", Kind::invalid, {"EarlyStopping", "patience", "-1"}, [&] { train::EarlyStopping({.patience = -1}); }},
      {"MaxSteps", Kind::invalid, {"MaxSteps", "0"}, [&] { train::MaxSteps(0); }},
  });
  // and the model trains after all of that
  CHECK(train::fit(model, sgd, ce, data, {.epochs = 1, .quiet = true}).epochs.size() == 1);
}
