// The Module API: one-, two- and many-input modules (UnaryModule, BinaryModule, forward(x, mask)),
// ModuleList, name validation, Module::to(DType) with whole-model gradchecks in float64,
// summary on int64 inputs, and the layers' options structs.
#include <doctest/doctest.h>

#include <cmath>
#include <type_traits>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;

namespace {
/// A module with two inputs that is not a BinaryModule: y = proj(x ⊙ mask), a masked projection.
struct MaskedProjection : nn::Module {
  std::shared_ptr<nn::Linear> proj;
  explicit MaskedProjection(int64_t features) {
    proj = register_module("proj", std::make_shared<nn::Linear>(nn::LinearOptions(features, 1).bias(false)));
  }
  Tensor forward(const Tensor& x, const Tensor& mask) { return (*proj)(x * mask); }
  std::string repr() const override { return "MaskedProjection"; }
};

/// A two-input module through the BinaryModule base: the squared distance of rows, Σ_j (a − b)².
struct SquaredDistance : nn::BinaryModule {
  Tensor forward(const Tensor& a, const Tensor& b) override { return sum((a - b) * (a - b), {1}); }
};

/// Exposes the protected registration functions, to test their checks.
struct Probe : nn::Module {
  Tensor parameter(const std::string& name) { return register_parameter(name, zeros({2})); }
  Tensor buffer(const std::string& name) { return register_buffer(name, zeros({2})); }
  void module(const std::string& name, nn::ModulePtr m = std::make_shared<nn::ReLU>()) { register_module(name, m); }
  std::string repr() const override { return "Probe(7)"; }
};

void set_values(const Tensor& t, const std::vector<float>& v) {
  REQUIRE(t.numel() == static_cast<int64_t>(v.size()));
  std::copy(v.begin(), v.end(), t.mutable_data<float>());
}
}  // namespace

TEST_CASE("modules with several inputs beside Sequential: forward(x, mask), BinaryModule, ModuleList") {
  // What Sequential accepts is checked at compile time: one-input modules only.
  static_assert(std::is_constructible_v<nn::Sequential, nn::Linear, nn::ReLU>);
  static_assert(std::is_constructible_v<nn::Sequential, std::shared_ptr<nn::Linear>>);
  static_assert(!std::is_constructible_v<nn::Sequential, MaskedProjection>);
  static_assert(!std::is_constructible_v<nn::Sequential, nn::Linear, std::shared_ptr<SquaredDistance>>);
  static_assert(!std::is_constructible_v<nn::Sequential, nn::ModuleList>);
  static_assert(std::is_abstract_v<nn::UnaryModule> && !std::is_abstract_v<nn::Module>);

  MaskedProjection m(3);
  set_values(m.proj->weight, {1, 2, 3});
  Tensor x = tensor({1, 1, 1, 2, 2, 2}, {2, 3}).requires_grad_();
  Tensor mask = tensor({1, 0, 1, 0, 1, 1}, {2, 3});
  Tensor y = m.forward(x, mask);
  CHECK(y.to_vector() == std::vector<double>{1 + 3, 2 * 2 + 2 * 3});
  sum(y).backward();
  CHECK(m.proj->weight.grad().to_vector() == std::vector<double>{1, 2, 1 + 2});  // Σ_rows x ⊙ mask
  CHECK(x.grad().to_vector() == std::vector<double>{1, 0, 3, 0, 2, 3});
  CHECK(m.named_parameters()[0].first == "proj.weight");

  SquaredDistance d;
  CHECK(d(tensor({1, 2, 0, 0}, {2, 2}), tensor({1, 0, 3, 4}, {2, 2})).to_vector() == std::vector<double>{4, 25});

  // A ModuleList holds modules of any kind and has no forward; at<T> gives them back typed.
  nn::ModuleList list;
  list.push_back(std::make_shared<MaskedProjection>(3));
  list.push_back(std::make_shared<nn::Linear>(3, 2));
  CHECK(list.at<MaskedProjection>(0)->forward(x, mask).shape() == Shape{2, 1});
  CHECK((*list.at<nn::Linear>(1))(x).shape() == Shape{2, 2});
  CHECK((*list.at<nn::UnaryModule>(1))(x).shape() == Shape{2, 2});
  CHECK(list.named_parameters()[0].first == "0.proj.weight");
  CHECK_THROWS_WITH_AS(list.at<nn::Linear>(0), doctest::Contains("ModuleList.at: module 0 is MaskedProjection"),
                       std::invalid_argument);
  CHECK_THROWS_AS(list.at<nn::Linear>(2), std::out_of_range);
}

TEST_CASE("register_parameter, register_buffer and register_module validate names") {
  Probe p;
  p.parameter("weight");
  p.buffer("running");
  p.module("act");
  struct Case {
    std::function<void()> call;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {[&] { p.parameter(""); }, "Probe(7).register_parameter: the name is empty"},
      {[&] { p.parameter("fc.weight"); }, "Probe(7).register_parameter: the name 'fc.weight' contains '.'"},
      {[&] { p.parameter("weight"); }, "Probe(7).register_parameter: the name 'weight' is already used by a parameter"},
      {[&] { p.parameter("running"); }, "Probe(7).register_parameter: the name 'running' is already used by a buffer"},
      {[&] { p.buffer(""); }, "Probe(7).register_buffer: the name is empty"},
      {[&] { p.buffer("a.b"); }, "Probe(7).register_buffer: the name 'a.b' contains '.'"},
      {[&] { p.buffer("act"); }, "Probe(7).register_buffer: the name 'act' is already used by a submodule"},
      {[&] { p.module(""); }, "Probe(7).register_module: the name is empty"},
      {[&] { p.module("x.y"); }, "Probe(7).register_module: the name 'x.y' contains '.'"},
      {[&] { p.module("weight"); }, "Probe(7).register_module: the name 'weight' is already used by a parameter"},
      {[&] { p.module("fresh", nullptr); }, "Probe(7).register_module: submodule 'fresh' is null"},
  };
  for (const auto& c : cases) {
    CHECK_THROWS_WITH_AS(c.call(), doctest::Contains(("tapegrad::nn::" + c.expected).c_str()), std::invalid_argument);
  }
  // Nothing was registered by the failed calls.
  CHECK(p.named_parameters().size() == 1);
  CHECK(p.named_buffers().size() == 1);
  CHECK(p.children().size() == 1);
}

TEST_CASE("Module::to converts parameters and buffers in place and keeps the handles") {
  manual_seed(3);
  auto lin = std::make_shared<nn::Linear>(3, 2);
  auto bn = std::make_shared<nn::BatchNorm1d>(2);
  nn::Sequential model(lin, bn);
  const Tensor weight = lin->weight;
  const auto before = weight.to_vector();
  sum(model(randn({4, 3}))).backward();  // a float32 gradient and updated running statistics
  const auto running = bn->running_mean.to_vector();

  CHECK(&model.to(DType::f64) == &model);
  CHECK(weight.is_same(lin->weight));
  CHECK(weight.is_same(model.parameters()[0]));
  CHECK(weight.dtype() == DType::f64);
  CHECK(weight.to_vector() == before);  // float32 → float64 is exact
  CHECK(weight.grad().dtype() == DType::f64);
  CHECK(bn->running_mean.dtype() == DType::f64);
  CHECK(bn->running_mean.to_vector() == running);
  CHECK(bn->num_batches_tracked.dtype() == DType::i64);  // integer buffers stay as they are
  for (auto& [name, t] : model.state_dict())
    if (name != "1.num_batches_tracked") CHECK_MESSAGE(t.dtype() == DType::f64, name);

  // It trains in float64: a new backward accumulates float64 into the converted gradient.
  model.zero_grad();
  Tensor out = model(randn({4, 3}, DType::f64));
  CHECK(out.dtype() == DType::f64);
  sum(out).backward();
  CHECK(lin->weight.grad().dtype() == DType::f64);
  model.to(DType::f32);
  CHECK(lin->weight.dtype() == DType::f32);
  CHECK(weight.is_same(lin->weight));

  // A graph recorded before the conversion does not run backward on data of the wrong dtype.
  Tensor stale = sum(model(randn({4, 3})));
  model.to(DType::f64);
  CHECK_THROWS(stale.backward());

  CHECK_THROWS_WITH_AS(model.to(DType::i64),
                       doctest::Contains("tapegrad::nn::Sequential.to: parameters and buffers convert to a floating "
                                         "dtype, got int64"),
                       DTypeError);
}

TEST_CASE("Module::to and optimizers: one that has not stepped follows, one with state refuses to step") {
  auto run = [](optim::Optimizer& opt, nn::Linear& m) {
    opt.zero_grad();
    sum(m(ones({2, 2}, m.weight.dtype()))).backward();
    opt.step();
  };
  nn::Linear fresh(2, 2);
  optim::Adam fresh_opt(fresh.parameters(), optim::AdamOptions(0.1));
  fresh.to(DType::f64);
  const double w0 = fresh.weight.at({0, 0});
  run(fresh_opt, fresh);
  CHECK(fresh.weight.dtype() == DType::f64);
  CHECK(fresh.weight.at({0, 0}) == doctest::Approx(w0 - 0.1));  // Adam's first step moves by lr

  nn::Linear stepped(2, 2);
  optim::Adam stepped_opt(stepped.parameters(), optim::AdamOptions(0.1));
  run(stepped_opt, stepped);
  stepped.to(DType::f64);
  const auto w = stepped.weight.to_vector();
  CHECK_THROWS_WITH_AS(
      run(stepped_opt, stepped),
      doctest::Contains(
          "tapegrad::optim::Adam::step: state 'exp_avg' of parameter 0 is float32 but the parameter is float64"),
      DTypeError);
  CHECK(stepped.weight.to_vector() == w);  // nothing was updated
  optim::Adam again(stepped.parameters(), optim::AdamOptions(0.1));
  run(again, stepped);
  CHECK(stepped.weight.to_vector() != w);
}

TEST_CASE("a whole model converted to float64 gradchecks its loss with respect to every parameter") {
  manual_seed(11);
  auto check_model = [](nn::UnaryModule& model, const Tensor& x32, const Tensor& y) {
    auto loss = [&](const std::vector<Tensor>&) { return F::cross_entropy(model(x32.to(DType::f64)), y); };
    std::vector<Tensor> params = model.parameters();
    // In float32, gradcheck refuses the parameters: the model has to be converted first.
    CHECK_THROWS_WITH_AS(gradcheck(loss, params), doctest::Contains("check gradients in float64"), AutogradError);
    model.to(DType::f64);
    GradcheckResult r = gradcheck(loss, params);
    CHECK_MESSAGE(r.ok, r.message);
    // The check has teeth: a gradient of the wrong sign on one parameter fails it.
    Tensor w = params.front();
    auto wrong = [&](const std::vector<Tensor>& in) {
      Tensor flipped = custom_op(
          "flip_grad", {w}, [](const std::vector<Tensor>& i) { return i[0] * 1.0; },
          [](const std::vector<Tensor>&, const Tensor& g, const Tensor&) -> Grads { return {g * -1.0}; });
      (void)in;
      return sum(flipped * flipped) + loss(in);
    };
    CHECK_FALSE(gradcheck(wrong, params).ok);
  };

  nn::BatchNorm1d* bn = nullptr;
  auto norm = std::make_shared<nn::BatchNorm1d>(4);
  bn = norm.get();
  nn::Sequential mlp(nn::Linear(3, 4), nn::Tanh(), norm, nn::Linear(4, 3));
  mlp(randn({8, 3}));  // running statistics away from their initial values
  mlp.eval();          // BatchNorm normalises with its (converted) buffers
  check_model(mlp, randn({5, 3}), index_tensor({0, 2, 1, 1, 0}));
  CHECK(bn->running_var.dtype() == DType::f64);

  nn::Sequential cnn(nn::Conv2d(nn::Conv2dOptions(1, 2, 3).padding(1)), nn::Tanh(), nn::MaxPool2d(2), nn::Flatten(),
                     nn::Linear(2 * 2 * 2, 3));
  check_model(cnn, randn({2, 1, 4, 4}), index_tensor({2, 0}));
}

TEST_CASE("summary runs on int64 inputs: a model that starts with an Embedding") {
  auto model = std::make_shared<nn::Sequential>(nn::Embedding(10, 4), nn::Flatten(), nn::Linear(12, 2));
  (*model)[2]->eval();  // modes are restored module by module
  std::string s = model->summary({1, 3}, DType::i64);
  CHECK(s.find("0: Embedding(10, 4)") != std::string::npos);
  CHECK(s.find("[1, 3, 4]") != std::string::npos);
  CHECK(s.find("[1, 12]") != std::string::npos);
  CHECK(s.find("Total params: 66") != std::string::npos);  // 40 + 12·2 + 2
  CHECK(model->is_training());
  CHECK((*model)[0]->is_training());
  CHECK_FALSE((*model)[2]->is_training());
  // Without the dtype, the input takes the parameters' float32, which an Embedding refuses.
  CHECK_THROWS_WITH_AS(model->summary({1, 3}), doctest::Contains("indices must be int64"), DTypeError);
  CHECK(model->is_training());
}

TEST_CASE("layers take options structs with chainable setters") {
  auto lo = nn::LinearOptions(4, 3).bias(false);
  CHECK(lo.in_features() == 4);
  CHECK_FALSE(lo.bias());
  nn::Linear no_bias(lo);
  CHECK_FALSE(no_bias.bias.defined());
  CHECK(no_bias.named_parameters().size() == 1);
  CHECK(nn::Linear(4, 3).named_parameters().size() == 2);

  auto co = nn::Conv2dOptions(1, 2, 3).stride(2).padding(1).bias(false);
  CHECK(co.stride().h == 2);
  CHECK(co.dilation().w == 1);
  nn::Conv2d conv(co);
  CHECK(conv(zeros({1, 1, 5, 5})).shape() == Shape{1, 2, 3, 3});  // (5 + 2 − 3) / 2 + 1
  CHECK(conv.parameters().size() == 1);
  CHECK(nn::Conv2d(nn::Conv2dOptions(1, 2, 3).padding(1).dilation(2))(zeros({1, 1, 5, 5})).shape() ==
        Shape{1, 2, 3, 3});  // 5 + 2 − 2·(3 − 1)
  CHECK(nn::Conv2d(nn::Conv2dOptions(1, 2, {3, 1}))(zeros({1, 1, 5, 5})).shape() == Shape{1, 2, 3, 5});
  CHECK(nn::Conv2d(1, 2, 3).repr() == "Conv2d(1 → 2, 3×3)");
  CHECK_THROWS_WITH_AS(nn::Conv2d(nn::Conv2dOptions(1, 2, 3).stride(0)),
                       doctest::Contains("Conv2d: stride must be positive, got 0"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::Conv2d(nn::Conv2dOptions(1, 2, 3).padding(-1)),
                       doctest::Contains("Conv2d: padding must be >= 0, got -1"), std::invalid_argument);

  CHECK(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1))(zeros({1, 1, 5, 5})).shape() == Shape{1, 1, 3, 3});
  Tensor avg = nn::AvgPool2d(nn::AvgPool2dOptions(2).stride(1))(tensor({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}));
  CHECK(avg.to_vector() == std::vector<double>{3, 4, 6, 7});

  nn::Dropout drop(nn::DropoutOptions(0.25));
  CHECK(drop.repr() == "Dropout(0.250000)");
  CHECK_THROWS_WITH_AS(nn::Dropout(nn::DropoutOptions(1.5)), doctest::Contains("p must be in [0, 1], got 1.5"),
                       std::invalid_argument);
  CHECK(nn::Embedding(nn::EmbeddingOptions(5, 2)).weight.shape() == Shape{5, 2});

  nn::LayerNorm ln(nn::LayerNormOptions({4}).eps(1e-3).elementwise_affine(false));
  CHECK(ln.parameters().empty());
  Tensor y = ln(tensor({1, 2, 3, 4}, {1, 4}));
  CHECK(y.at({0, 0}) == doctest::Approx(-1.5 / std::sqrt(1.25 + 1e-3)));
  nn::LayerNorm gamma_only(nn::LayerNormOptions({4}).bias(false));  // γ only (nanoGPT's LayerNorm)
  CHECK(gamma_only.named_parameters().size() == 1);
  CHECK(gamma_only.named_parameters()[0].first == "weight");
  CHECK(gamma_only.repr() == "LayerNorm[4] (bias=false)");

  nn::BatchNorm2d bare(nn::BatchNormOptions(3).affine(false).track_running_stats(false).eps(1e-3));
  CHECK(bare.parameters().empty());
  CHECK(bare.buffers().empty());
  nn::BatchNorm1d slow(nn::BatchNormOptions(2).momentum(0.25));
  slow(tensor({0, 0, 4, 8}, {2, 2}));
  CHECK(slow.running_mean.to_vector() == std::vector<double>{0.5, 1});  // 0.75·0 + 0.25·mean
}

TEST_CASE("a submodule used twice: parameters() lists its tensors once, state_dict() under both names") {
  auto lin = std::make_shared<nn::Linear>(3, 3);
  nn::Sequential model(lin, nn::ReLU(), lin);
  CHECK(model.parameters().size() == 2);
  auto named = model.named_parameters();
  REQUIRE(named.size() == 2);
  CHECK(named[0].first == "0.weight");
  CHECK(named[1].first == "0.bias");
  auto state = model.state_dict();  // PyTorch's state_dict keeps every name
  REQUIRE(state.size() == 4);
  CHECK(state[2].first == "2.weight");
  CHECK(state[2].second.is_same(state[0].second));
  model.load_state_dict(state);
  // clip_grad_norm_ over parameters() counts the shared gradient once
  Tensor x = ones({2, 3});
  sum(model(x)).backward();
  double squares = 0;
  for (const Tensor& p : {lin->weight, lin->bias})
    for (double g : p.grad().to_vector()) squares += g * g;
  const double once = std::sqrt(squares);
  CHECK(optim::clip_grad_norm_(model.parameters(), 1e9) == doctest::Approx(once));
}
