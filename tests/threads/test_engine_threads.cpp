// The engine across threads and nested calls: replay order does not depend on which thread
// recorded a node, per-call state lives in the call (not in the shared nodes), and leaves
// accumulate safely when several backward passes reach them at once. Run under ThreadSanitizer
// by `make test-tsan`.
#include <doctest/doctest.h>

#include <thread>

#include "autograd/autograd.hpp"

using namespace tapegrad;

namespace {
/// y = x · 1.01^n through n recorded ops.
Tensor chain(Tensor y, int n) {
  for (int i = 0; i < n; ++i) y = y * 1.01;
  return y;
}
}  // namespace

TEST_CASE("a graph recorded on one thread and continued on another backpropagates fully") {
  SUBCASE("recorded on a worker, backward on the main thread") {
    Tensor x = tensor({1.0}, DType::f64).requires_grad_();
    Tensor y;
    std::thread([&] { y = chain(x, 100); }).join();
    Tensor z = chain(y, 100);  // main thread continues the same graph
    sum(z).backward();
    REQUIRE(x.grad().defined());
    CHECK(x.grad().item() == doctest::Approx(std::pow(1.01, 200)).epsilon(1e-12));
  }
  SUBCASE("recorded on the main thread, continued and backpropagated on a worker") {
    Tensor x = tensor({1.0}, DType::f64).requires_grad_();
    Tensor y = chain(x, 100);
    std::thread([&] { sum(chain(y, 100)).backward(); }).join();
    REQUIRE(x.grad().defined());
    CHECK(x.grad().item() == doctest::Approx(std::pow(1.01, 200)).epsilon(1e-12));
  }
  SUBCASE("two workers each add a branch, the main thread joins them") {
    Tensor x = tensor({2.0}, DType::f64).requires_grad_();
    Tensor a, b;
    std::thread ta([&] { a = chain(x * x, 50); });  // x² · 1.01^50
    std::thread tb([&] { b = chain(x * 3.0, 80); });
    ta.join();
    tb.join();
    sum(a + b).backward();
    CHECK(x.grad().item() == doctest::Approx(4.0 * std::pow(1.01, 50) + 3.0 * std::pow(1.01, 80)).epsilon(1e-12));
  }
}

TEST_CASE("a backward inside a backward function keeps its own state") {
  // The custom op's backward runs grad() over a graph that shares nodes with the outer one.
  Tensor w = tensor({3.0}, DType::f64).requires_grad_();
  Tensor shared = w * w;  // reached by both the outer and the nested call
  Tensor x = tensor({2.0}, DType::f64).requires_grad_();
  Tensor y = custom_op(
      "scaled_by_inner_grad", {x, shared},
      [](const std::vector<Tensor>& in) { return in[0] * in[1]; },
      [&](const std::vector<Tensor>& in, const Tensor& g, const Tensor&) -> Grads {
        GradModeGuard record(true);  // backward functions run with recording off, as in PyTorch
        Tensor inner = grad({sum(shared * 5.0)}, {w}, {}, /*retain_graph=*/true)[0];  // 10w = 30
        CHECK(inner.item() == doctest::Approx(30.0));
        return {g * in[1], g * in[0]};
      });
  sum(y).backward();
  CHECK(x.grad().item() == doctest::Approx(9.0));   // d(x·w²)/dx = w²
  CHECK(w.grad().item() == doctest::Approx(12.0));  // d(x·w²)/dw = 2xw
}

TEST_CASE("concurrent backward passes over a shared graph accumulate every contribution") {
  Tensor w = tensor({1.0, 2.0, 3.0}, DType::f64).requires_grad_();
  Tensor shared = w * w;  // saved and retained; both threads read it
  constexpr int kThreads = 4, kRounds = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int r = 0; r < kRounds; ++r) backward({sum(shared)}, {}, /*retain_graph=*/true);
    });
  for (auto& t : threads) t.join();
  // d(Σw²)/dw = 2w, accumulated kThreads · kRounds times, none lost.
  auto g = w.grad().to_vector();
  CHECK(g[0] == doctest::Approx(2.0 * kThreads * kRounds));
  CHECK(g[2] == doctest::Approx(6.0 * kThreads * kRounds));
}

TEST_CASE("grad() runs only the nodes that lead to the requested inputs") {
  Tensor x = tensor({1.0, 2.0}, DType::f64).requires_grad_();
  Tensor w = tensor({3.0, 4.0}, DType::f64).requires_grad_();
  int weight_branch_runs = 0;
  Tensor tw = custom_op(
      "counted", {w}, [](const std::vector<Tensor>& in) { return in[0] * 1.0; },
      [&](const std::vector<Tensor>&, const Tensor& g, const Tensor&) -> Grads {
        ++weight_branch_runs;
        return {g};
      });
  Tensor loss = sum(x * tw);
  Tensor gx = grad({loss}, {x})[0];
  CHECK(gx.to_vector() == std::vector<double>{3.0, 4.0});
  CHECK(weight_branch_runs == 0);  // the weight branch leads only to w
  CHECK_FALSE(w.grad().defined());
}

TEST_CASE("threads recording ops on one fresh leaf share its accumulator: no contribution lost") {
  // Each round a new leaf: its accumulator is created lazily by whichever thread records first.
  constexpr int kThreads = 4, kRounds = 200;
  for (int r = 0; r < kRounds; ++r) {
    Tensor w = tensor({1.0, 2.0}, DType::f64).requires_grad_();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&] { sum(w * tensor({1.0, 1.0}, DType::f64)).backward(); });
    for (auto& t : threads) t.join();
    REQUIRE(w.grad().to_vector() == std::vector<double>{double(kThreads), double(kThreads)});
  }
}
