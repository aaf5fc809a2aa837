// Optimizers: XOR converges with each, parameter groups, skipped parameters, in-place updates,
// state dicts, option validation; gradient clipping.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;

namespace {

using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>;

/// Trains 2-8-1 tanh/sigmoid on XOR full-batch; returns the final loss.
double train_xor(const MakeOptimizer& make, int steps) {
  Generator gen(1234);
  auto model = std::make_shared<nn::Sequential>(nn::Linear(2, 8, gen), nn::Tanh(), nn::Linear(8, 1, gen));
  auto opt = make(model->parameters());
  Tensor x = tensor({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2}), y = tensor({0, 1, 1, 0}, {4, 1});
  double loss_value = 0;
  for (int i = 0; i < steps; ++i) {
    opt->zero_grad();
    Tensor loss = F::binary_cross_entropy_with_logits((*model)(x), y);
    loss.backward();
    opt->step();
    loss_value = loss.item();
  }
  NoGradGuard no_grad;
  auto pred = sigmoid((*model)(x)).to_vector();
  CHECK(pred[0] < 0.5);
  CHECK(pred[1] > 0.5);
  CHECK(pred[2] > 0.5);
  CHECK(pred[3] < 0.5);
  return loss_value;
}

}  // namespace

TEST_CASE("XOR converges with every optimizer") {
  using namespace optim;
  struct Case { const char* name; MakeOptimizer make; };
  std::vector<Case> cases = {
      {"SGD", [](auto p) { return std::make_unique<SGD>(p, SGDOptions(0.5)); }},
      {"SGD momentum", [](auto p) { return std::make_unique<SGD>(p, SGDOptions(0.1).momentum(0.9)); }},
      {"SGD nesterov", [](auto p) { return std::make_unique<SGD>(p, SGDOptions(0.1).momentum(0.9).nesterov(true)); }},
      {"Adam", [](auto p) { return std::make_unique<Adam>(p, AdamOptions(0.05)); }},
      {"Adam amsgrad", [](auto p) { return std::make_unique<Adam>(p, AdamOptions(0.05).amsgrad(true)); }},
      {"AdamW", [](auto p) { return std::make_unique<AdamW>(p, AdamWOptions(0.05)); }},
      {"RMSprop", [](auto p) { return std::make_unique<RMSprop>(p, RMSpropOptions(0.02)); }},
      {"RMSprop centered", [](auto p) { return std::make_unique<RMSprop>(p, RMSpropOptions(0.01).centered(true).momentum(0.5)); }},
      {"Adagrad", [](auto p) { return std::make_unique<Adagrad>(p, AdagradOptions(0.3)); }},
  };
  for (auto& c : cases) {
    CAPTURE(std::string(c.name));
    double loss = train_xor(c.make, 500);
    CHECK(loss < 0.1);
  }
}

TEST_CASE("steps mutate parameter storage in place and skip parameters without gradients") {
  Tensor a = tensor({1, 2}).requires_grad_(), b = tensor({3, 4}).requires_grad_();
  const float* storage = a.data<float>();
  optim::SGD opt({a, b}, optim::SGDOptions(0.5));
  a.set_grad(tensor({1, 1}));
  opt.step();
  CHECK(a.data<float>() == storage);
  CHECK(a.to_vector() == std::vector<double>{0.5, 1.5});
  CHECK(b.to_vector() == std::vector<double>{3, 4});
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("parameter groups have their own learning rates") {
  Tensor a = tensor({1}).requires_grad_(), b = tensor({1}).requires_grad_();
  optim::SGD opt({a}, optim::SGDOptions(0.1));
  opt.add_param_group({b}, optim::SGDOptions(0.01));
  CHECK(opt.num_param_groups() == 2);
  a.set_grad(tensor({1}));
  b.set_grad(tensor({1}));
  opt.step();
  CHECK(a.item() == doctest::Approx(0.9));
  CHECK(b.item() == doctest::Approx(0.99));
  opt.set_lr(0.2);
  CHECK(opt.group_lr(1) == 0.2);
  CHECK_THROWS_AS(opt.add_param_group({a}, optim::SGDOptions(0.1)), std::invalid_argument);  // a is already in
}

TEST_CASE("set_lr and set_group_lr refuse rates that are not finite and >= 0, changing nothing") {
  Tensor a = tensor({1}).requires_grad_(), b = tensor({1}).requires_grad_();
  optim::SGD opt({a}, optim::SGDOptions(0.1));
  opt.add_param_group({b}, optim::SGDOptions(0.01));
  const double inf = std::numeric_limits<double>::infinity();
  for (double bad : {inf, -inf, std::nan(""), -1.0}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(opt.set_lr(bad), doctest::Contains("tapegrad::optim::SGD: learning rate of group 0 must be finite"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(opt.set_group_lr(1, bad),
                         doctest::Contains("tapegrad::optim::SGD: learning rate of group 1 must be finite and >= 0"),
                         std::invalid_argument);
    CHECK(opt.group_lr(0) == 0.1);
    CHECK(opt.group_lr(1) == 0.01);
  }
  a.set_grad(tensor({1}));
  opt.step();
  CHECK(a.item() == doctest::Approx(0.9));  // still the old rate
}

TEST_CASE("optimizer state dicts round-trip state and options") {
  auto run = [](optim::Adam& opt, Tensor& p, int steps) {
    for (int i = 0; i < steps; ++i) {
      p.set_grad(tensor({0.3, -0.7, 1.1}));
      opt.step();
    }
  };
  Tensor p1 = tensor({1, 2, 3}).requires_grad_();
  optim::Adam a1({p1}, optim::AdamOptions(0.05).amsgrad(true));
  run(a1, p1, 3);
  auto state = a1.state_dict();
  // a fresh optimizer over a copy of the parameter, restored from the dict, continues identically
  Tensor p2 = tensor(p1.to_vector()).requires_grad_();
  optim::Adam a2({p2}, optim::AdamOptions(0.9));
  a2.load_state_dict(state);
  CHECK(a2.lr() == doctest::Approx(0.05));
  CHECK(a2.options().amsgrad());
  run(a1, p1, 2);
  run(a2, p2, 2);
  CHECK(p1.to_vector() == p2.to_vector());
  // the dict can be written with the safetensors writer
  const std::string path = "optim_state_test.safetensors";
  nn::save_safetensors(state, path);
  CHECK(nn::load_safetensors(path).size() == state.size());
  std::remove(path.c_str());
  // mismatches are all reported and nothing changes
  Tensor q = tensor({1, 2}).requires_grad_();
  optim::Adam a3({q}, optim::AdamOptions(0.5));
  try {
    a3.load_state_dict(state);
    FAIL("expected an error");
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    CHECK(msg.find("state.0.exp_avg") != std::string::npos);
    CHECK(msg.find("state.0.exp_avg_sq") != std::string::npos);
  }
  CHECK(a3.lr() == 0.5);
}

TEST_CASE("options are validated in the constructor") {
  Tensor p = tensor({1}).requires_grad_();
  using namespace optim;
  CHECK_THROWS_WITH_AS(SGD({p}, SGDOptions(-1)), doctest::Contains("SGD: lr"), std::invalid_argument);
  CHECK_THROWS_AS(SGD({p}, SGDOptions(0.1).nesterov(true)), std::invalid_argument);
  CHECK_THROWS_WITH_AS(Adam({p}, AdamOptions().betas(1.0, 0.9)), doctest::Contains("Adam: betas"), std::invalid_argument);
  CHECK_THROWS_AS(Adam({p}, AdamOptions().eps(-1)), std::invalid_argument);
  CHECK_THROWS_AS(AdamW({p}, AdamWOptions().weight_decay(-0.1)), std::invalid_argument);
  CHECK_THROWS_AS(RMSprop({p}, RMSpropOptions().momentum(-1)), std::invalid_argument);
  // PyTorch: "optimizer got an empty parameter list" — a model with no parameters trains nothing
  // AdamW's weight decay defaults to PyTorch's 1e-2 whichever options type it is given
  CHECK(AdamW({p}, AdamOptions(1e-3)).options().weight_decay() == 1e-2);
  CHECK(AdamW({p}, AdamOptions(1e-3).betas(0.9, 0.99)).options().weight_decay() == 1e-2);
  CHECK(AdamW({p}, AdamOptions(1e-3).weight_decay(0)).options().weight_decay() == 0);
  CHECK(Adam({p}, AdamOptions(1e-3)).options().weight_decay() == 0);
  CHECK_THROWS_WITH_AS(SGD({}, SGDOptions(0.1)), doctest::Contains("empty parameter list"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(Adam({}, AdamOptions()), doctest::Contains("empty parameter list"), std::invalid_argument);
  CHECK_THROWS_AS(Adagrad({p}, AdagradOptions().lr_decay(-1)), std::invalid_argument);
  CHECK_THROWS_AS(SGD({Tensor()}), std::invalid_argument);
  CHECK_THROWS_AS(SGD({p, p}), std::invalid_argument);
  CHECK_THROWS_WITH_AS(SGD({p * 2.0}), doctest::Contains("not a leaf"), std::invalid_argument);
  CHECK_THROWS_AS(SGD({index_tensor({1})}), std::invalid_argument);
}

TEST_CASE("clip_grad_norm_ scales all gradients together") {
  Tensor a = tensor({1, 1}).requires_grad_(), b = tensor({1}).requires_grad_(), c = tensor({1}).requires_grad_();
  a.set_grad(tensor({3, 0}));
  b.set_grad(tensor({4}));
  double norm = optim::clip_grad_norm_({a, b, c}, 1.0);
  CHECK(norm == doctest::Approx(5.0));
  CHECK(a.grad().at({0}) == doctest::Approx(0.6).epsilon(1e-5));
  CHECK(b.grad().at({0}) == doctest::Approx(0.8).epsilon(1e-5));
  // under the limit: unchanged
  CHECK(optim::clip_grad_norm_({a, b}, 10.0) == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(b.grad().at({0}) == doctest::Approx(0.8).epsilon(1e-5));
  // ∞-norm
  a.set_grad(tensor({-6, 2}));
  CHECK(optim::clip_grad_norm_({a}, 3.0, INFINITY) == 6.0);
  CHECK(a.grad().at({0}) == doctest::Approx(-3.0).epsilon(1e-5));
  CHECK_THROWS_AS(optim::clip_grad_norm_({a}, -1.0), std::invalid_argument);
  // a NaN gradient makes the ∞-norm NaN (as the 2-norm, and PyTorch's): a diverged run shows
  Tensor d = tensor({1, 1}).requires_grad_(), e = tensor({1}).requires_grad_();
  for (double first : {3.0, std::nan("")}) {
    d.set_grad(tensor({first, first == 3.0 ? std::nan("") : 3.0}));
    e.set_grad(tensor({12}));
    CHECK(std::isnan(optim::clip_grad_norm_({d, e}, 1.0, INFINITY)));
    CHECK(std::isnan(optim::clip_grad_norm_({e, d}, 1.0, INFINITY)));
  }
}

TEST_CASE("clip_grad_norm_ on one parameter leaves the gradient of another alone") {
  // backward gives a and b the same gradient tensor (add passes it through): clipping a scales a only
  Tensor a = tensor({1, 2}).requires_grad_(), b = tensor({3, 4}).requires_grad_();
  sum(a + b).backward();
  CHECK(optim::clip_grad_norm_({a}, 0.1) == doctest::Approx(std::sqrt(2.0)));
  CHECK(a.grad().at({1}) == doctest::Approx(0.1 / std::sqrt(2.0)).epsilon(1e-4));
  CHECK(b.grad().to_vector() == std::vector<double>{1, 1});
}

TEST_CASE("clip_grad_norm_ over many elements: the norm of every element, the tails past the lanes included") {
  // lengths around the kernel's 8 lanes, so the remainders and a lone element are counted
  for (DType dtype : {DType::f32, DType::f64}) {
    Generator gen(7);
    std::vector<Tensor> params;
    std::vector<std::vector<double>> grads;
    for (int64_t n : {1, 7, 8, 19, 1000}) {
      params.push_back(zeros({n}, dtype).requires_grad_());
      params.back().set_grad(randn({n}, dtype, gen));
      grads.push_back(params.back().grad().to_vector());
    }
    for (double p : {2.0, 3.0, double(INFINITY)}) {
      for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(tensor(grads[i], {int64_t(grads[i].size())}, dtype));
      double want = 0;
      for (const auto& g : grads)
        for (double v : g) want = std::isinf(p) ? std::max(want, std::abs(v)) : want + std::pow(std::abs(v), p);
      if (!std::isinf(p)) want = std::pow(want, 1 / p);
      CAPTURE(p);
      CHECK(optim::clip_grad_norm_(params, 0.5, p) == doctest::Approx(want).epsilon(1e-12));
      const double coef = 0.5 / (want + 1e-6);
      for (size_t i = 0; i < params.size(); ++i) {
        const auto clipped = params[i].grad().to_vector();
        const size_t last = clipped.size() - 1;  // the tail element, past the last full group of lanes
        CHECK(clipped[last] == doctest::Approx(grads[i][last] * coef).epsilon(dtype == DType::f32 ? 1e-6 : 1e-12));
        CHECK(clipped[0] == doctest::Approx(grads[i][0] * coef).epsilon(dtype == DType::f32 ? 1e-6 : 1e-12));
      }
    }
  }
}

TEST_CASE("clip_grad_value_ clamps each element") {
  Tensor a = tensor({0, 0, 0}).requires_grad_();
  a.set_grad(tensor({-5, 0.5, 7}));
  optim::clip_grad_value_({a}, 1.0);
  CHECK(a.grad().to_vector() == std::vector<double>{-1, 0.5, 1});
  CHECK_THROWS_AS(optim::clip_grad_value_({a}, -1.0), std::invalid_argument);
}
