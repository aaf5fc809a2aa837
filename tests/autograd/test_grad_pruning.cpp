// grad(outputs, inputs) runs only the nodes on a path to a requested input (PyTorch's exec_info):
// nodes that lead only to other leaves (the weights, when attributing to the input) are never run,
// and an op's backward skips the inputs that lead nowhere requested (ctx.needs). backward() runs
// every node. Results are the same either way; retain_graph and create_graph keep their meaning.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "autograd/custom_op.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;

namespace {

/// t · 1, recorded as a custom op whose backward counts its calls.
Tensor counted(const Tensor& t, int& runs) {
  return custom_op(
      "counted", {t}, [](const std::vector<Tensor>& in) { return in[0] * 1.0; },
      [&runs](const std::vector<Tensor>&, const Tensor& g, const Tensor&) -> Grads {
        ++runs;
        return {g};
      });
}

/// t · 1, recorded as a custom op whose backward throws.
Tensor explosive(const Tensor& t) {
  return custom_op(
      "explosive", {t}, [](const std::vector<Tensor>& in) { return in[0] * 1.0; },
      [](const std::vector<Tensor>&, const Tensor&, const Tensor&) -> Grads {
        throw std::runtime_error("explosive's backward ran");
      });
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && a.to_vector() == b.to_vector();
}

// What the engine's backward hook sees for the ops named "linear": whether each input's gradient was computed.
thread_local std::vector<std::vector<bool>> t_linear_grads;
void record_linear(const Node& n, const Grads& grads, double) {
  if (std::string(n.name()) != "linear") return;
  std::vector<bool> defined;
  for (const auto& g : grads) defined.push_back(g.defined());
  t_linear_grads.push_back(defined);
}
struct LinearSpy {
  LinearSpy() {
    t_linear_grads.clear();
    previous = detail::set_backward_hook(record_linear);
  }
  ~LinearSpy() { detail::set_backward_hook(previous); }
  detail::BackwardHook previous = nullptr;
};

}  // namespace

TEST_CASE("grad() never runs a node that leads only to weights, backward() runs it") {
  Tensor x = randn({3, 4}, DType::f64).requires_grad_();
  Tensor w = randn({4, 2}, DType::f64).requires_grad_();
  int runs = 0;
  auto loss = [&] { return sum(tanh(matmul(x, counted(w, runs)))); };

  Tensor gx = grad({loss()}, {x})[0];
  CHECK(runs == 0);
  CHECK_FALSE(w.grad().defined());
  CHECK_FALSE(x.grad().defined());

  Tensor gw = grad({loss()}, {w})[0];
  CHECK(runs == 1);
  backward({loss()});
  CHECK(runs == 2);
  // The same numbers whichever way they were computed.
  CHECK(bitwise_equal(gx, x.grad()));
  CHECK(bitwise_equal(gw, w.grad()));
}

TEST_CASE("a node whose backward would throw is not run when it leads only to weights") {
  Tensor x = randn({2, 3}, DType::f64).requires_grad_();
  Tensor w = randn({3}, DType::f64).requires_grad_();
  Tensor loss = sum(mul(x, explosive(w)));
  Tensor gx;
  CHECK_NOTHROW(gx = grad({loss}, {x}, {}, /*retain_graph=*/true)[0]);
  CHECK(gx.shape() == x.shape());
  // Asked for w, it runs (and throws): the test above is not passing by accident.
  CHECK_THROWS_WITH_AS(grad({loss}, {w}), "explosive's backward ran", std::runtime_error);
}

TEST_CASE("grad() gives the same values as the unpruned computation, on an MLP") {
  Generator gen(7);
  nn::Sequential model(nn::Linear(6, 8, gen), nn::ReLU(), nn::Linear(8, 3, gen));
  model.to(DType::f64);
  Tensor x = randn({5, 6}, DType::f64, gen).requires_grad_();
  std::vector<Tensor> all{x};
  for (const auto& p : model.parameters()) all.push_back(p);

  Tensor pruned = grad({sum(model(x))}, {x})[0];
  Tensor unpruned = grad({sum(model(x))}, all)[0];  // every weight gradient computed too
  CHECK(bitwise_equal(pruned, unpruned));
  backward({sum(model(x))});
  CHECK(bitwise_equal(pruned, x.grad()));
}

TEST_CASE("an op skips the gradients of its inputs that lead nowhere requested (linear's weight GEMM)") {
  Generator gen(3);
  nn::Linear fc(5, 4, gen);
  Tensor x = randn({2, 5}, DType::f32, gen).requires_grad_();
  {
    LinearSpy spy;
    grad({sum(fc(x))}, {x});
    REQUIRE(t_linear_grads.size() == 1);
    CHECK(t_linear_grads[0] == std::vector<bool>{true, false, false});  // x only; no gᵀ·x, no bias sum
  }
  {
    LinearSpy spy;
    grad({sum(fc(x))}, {fc.weight});
    REQUIRE(t_linear_grads.size() == 1);
    CHECK(t_linear_grads[0] == std::vector<bool>{false, true, false});
  }
  {
    LinearSpy spy;
    backward({sum(fc(x))});
    REQUIRE(t_linear_grads.size() == 1);
    CHECK(t_linear_grads[0] == std::vector<bool>{true, true, true});
  }
}

TEST_CASE("grad() with respect to an intermediate tensor stops there") {
  Tensor x = randn({4}, DType::f64).requires_grad_();
  int below = 0;
  Tensor h = mul(counted(x, below), 2.0);
  Tensor loss = sum(mul(h, h));
  Tensor gh = grad({loss}, {h})[0];
  CHECK(below == 0);  // the op that made h is not on a path to h
  std::vector<double> expected;
  for (double v : h.to_vector()) expected.push_back(2.0 * v);
  CHECK(gh.to_vector() == expected);
}

TEST_CASE("pruned grad() keeps retain_graph's meaning") {
  Tensor x = randn({3}, DType::f64).requires_grad_();
  Tensor w = randn({3}, DType::f64).requires_grad_();
  int runs = 0;
  SUBCASE("retained: the weight branch can be asked for afterwards, with the same value") {
    Tensor loss = sum(mul(exp(x), counted(w, runs)));
    Tensor gx = grad({loss}, {x}, {}, /*retain_graph=*/true)[0];
    CHECK(runs == 0);
    Tensor gw = grad({loss}, {w})[0];
    CHECK(runs == 1);
    CHECK(gw.to_vector() == exp(x).to_vector());
    CHECK(bitwise_equal(gx, mul(exp(x), w)));
  }
  SUBCASE("not retained: the shared nodes were freed, and a second call says so") {
    Tensor loss = sum(mul(exp(x), counted(w, runs)));
    grad({loss}, {x});
    CHECK_THROWS_AS(grad({loss}, {w}), AutogradError);
    CHECK(runs == 0);  // refused before any node ran
  }
}

TEST_CASE("pruned grad() with create_graph: second derivatives, weight branch still skipped") {
  Tensor x = tensor({0.5, -1.0, 2.0}, DType::f64).requires_grad_();
  Tensor w = tensor({1.5, 2.0, -0.5}, DType::f64).requires_grad_();
  int runs = 0;
  Tensor y = sum(mul(pow(x, 3.0), counted(w, runs)));               // Σ x³ w
  Tensor gx = grad({y}, {x}, {}, false, /*create_graph=*/true)[0];  // 3x²w
  CHECK(runs == 0);
  Tensor ggx = grad({sum(gx)}, {x}, {}, /*retain_graph=*/true)[0];  // 6xw
  CHECK(runs == 0);
  const std::vector<double> xv = x.to_vector(), wv = w.to_vector(), got = ggx.to_vector();
  for (size_t i = 0; i < xv.size(); ++i) CHECK(got[i] == doctest::Approx(6.0 * xv[i] * wv[i]));
  // d(Σ 3x²w)/dw = 3x² goes through the counted node's own (recorded) backward: it runs now.
  Tensor gw = grad({sum(gx)}, {w})[0];
  for (size_t i = 0; i < xv.size(); ++i) CHECK(gw.to_vector()[i] == doctest::Approx(3.0 * xv[i] * xv[i]));
}

TEST_CASE("pruned grad(): several inputs and outputs, an unused input") {
  Tensor a = randn({2}, DType::f64).requires_grad_();
  Tensor b = randn({2}, DType::f64).requires_grad_();
  Tensor unused = randn({2}, DType::f64).requires_grad_();
  int runs = 0;
  Tensor o1 = sum(mul(a, counted(b, runs)));
  Tensor o2 = sum(mul(a, a));
  auto g = grad({o1, o2}, {a, unused}, {}, false, false, /*allow_unused=*/true);
  CHECK(runs == 0);
  CHECK_FALSE(g[1].defined());
  std::vector<double> expected;
  for (size_t i = 0; i < 2; ++i) expected.push_back(b.to_vector()[i] + 2.0 * a.to_vector()[i]);
  for (size_t i = 0; i < 2; ++i) CHECK(g[0].to_vector()[i] == doctest::Approx(expected[i]));
}
