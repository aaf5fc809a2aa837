// Post-accumulate-grad hooks (Tensor::register_post_accumulate_grad_hook) and
// queue_backward_callback: when they fire, how often, and what they see.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "autograd/autograd.hpp"

using namespace tapegrad;

namespace {
// Records, for each firing, the leaf's name and its grad() at that moment.
struct Recorder {
  std::vector<std::string> names;
  std::vector<std::vector<double>> grads;
  PostAccumulateGradHook hook(const std::string& name) {
    return [this, name](const Tensor& leaf) {
      names.push_back(name);
      grads.push_back(leaf.grad().to_vector());
    };
  }
};
}  // namespace

TEST_CASE("a post-accumulate hook fires once, after every contribution is in grad()") {
  Tensor x = tensor({1, 2}).requires_grad_();
  Recorder rec;
  x.register_post_accumulate_grad_hook(rec.hook("x"));
  // x feeds three ops: the hook must see their sum, 2x + 3 + 1, once
  Tensor y = sum(x * x) + sum(x * 3.0) + sum(x);
  y.backward();
  REQUIRE(rec.names.size() == 1);
  CHECK(rec.grads[0] == std::vector<double>{6, 8});
  CHECK(x.grad().to_vector() == std::vector<double>{6, 8});
}

TEST_CASE("a leaf used twice by one op fires once with both contributions") {
  Tensor x = tensor({3.0}).requires_grad_();
  Recorder rec;
  x.register_post_accumulate_grad_hook(rec.hook("x"));
  (x * x).backward();
  REQUIRE(rec.names.size() == 1);
  CHECK(rec.grads[0] == std::vector<double>{6});
}

TEST_CASE("leaves complete in backward order, each as soon as its last consumer has run") {
  // out = sum(w2 * relu(w1 * x)): backward reaches w2 first, w1 last; x needs no grad.
  Tensor x = tensor({1, 2});
  Tensor w1 = tensor({0.5, 1.5}).requires_grad_(), w2 = tensor({2, 3}).requires_grad_();
  std::vector<std::string> order;
  bool w1_done_when_w2_fired = true;
  w1.register_post_accumulate_grad_hook([&](const Tensor&) { order.push_back("w1"); });
  w2.register_post_accumulate_grad_hook([&](const Tensor&) {
    order.push_back("w2");
    w1_done_when_w2_fired = w1.grad().defined();
  });
  sum(w2 * relu(w1 * x)).backward();
  CHECK(order == std::vector<std::string>{"w2", "w1"});
  CHECK_FALSE(w1_done_when_w2_fired);  // w2 was delivered while backward still had w1's path to run
  CHECK(w1.grad().to_vector() == std::vector<double>{2, 6});
}

TEST_CASE("with retain_graph every pass fires the hook, and grad() accumulates") {
  Tensor x = tensor({1.0}).requires_grad_();
  Recorder rec;
  x.register_post_accumulate_grad_hook(rec.hook("x"));
  Tensor y = x * 4.0;
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  REQUIRE(rec.names.size() == 2);
  CHECK(rec.grads[0] == std::vector<double>{4});
  CHECK(rec.grads[1] == std::vector<double>{8});
}

TEST_CASE("grad() does not fire post-accumulate hooks: it accumulates nothing") {
  Tensor x = tensor({1, 2}).requires_grad_();
  Recorder rec;
  x.register_post_accumulate_grad_hook(rec.hook("x"));
  auto g = grad({sum(x * x)}, {x});
  CHECK(g[0].to_vector() == std::vector<double>{2, 4});
  CHECK(rec.names.empty());
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("a leaf the pass does not reach, or reaches with no gradient, does not fire") {
  Tensor x = tensor({1.0}).requires_grad_(), unused = tensor({1.0}).requires_grad_();
  Recorder rec;
  unused.register_post_accumulate_grad_hook(rec.hook("unused"));
  x.register_post_accumulate_grad_hook(rec.hook("x"));
  (x * 2.0).backward();
  CHECK(rec.names == std::vector<std::string>{"x"});
}

TEST_CASE("hooks run in registration order and remove() unregisters one") {
  Tensor x = tensor({1.0}).requires_grad_();
  std::vector<int> calls;
  HookHandle first = x.register_post_accumulate_grad_hook([&](const Tensor&) { calls.push_back(1); });
  x.register_post_accumulate_grad_hook([&](const Tensor&) { calls.push_back(2); });
  (x * 2.0).backward();
  CHECK(calls == std::vector<int>{1, 2});
  first.remove();
  first.remove();  // idempotent
  (x * 2.0).backward();
  CHECK(calls == std::vector<int>{1, 2, 2});
  HookHandle().remove();  // an empty handle removes nothing
}

TEST_CASE("a leaf that is itself the output fires its hook") {
  Tensor x = tensor({1.0}).requires_grad_();
  Recorder rec;
  x.register_post_accumulate_grad_hook(rec.hook("x"));
  x.backward();
  CHECK(rec.grads == std::vector<std::vector<double>>{{1}});
}

TEST_CASE("register_post_accumulate_grad_hook refuses non-leaves and leaves without grad") {
  Tensor x = tensor({1.0}).requires_grad_();
  Tensor y = x * x;
  CHECK_THROWS_WITH_AS(y.register_post_accumulate_grad_hook([](const Tensor&) {}),
                       doctest::Contains("is not a leaf (it was produced by 'mul')"), AutogradError);
  Tensor c = tensor({1.0});
  CHECK_THROWS_WITH_AS(c.register_post_accumulate_grad_hook([](const Tensor&) {}),
                       doctest::Contains("does not require grad"), AutogradError);
}

TEST_CASE("queue_backward_callback runs once after the last hook of the pass") {
  Tensor a = tensor({1.0}).requires_grad_(), b = tensor({2.0}).requires_grad_();
  std::vector<std::string> events;
  int queued = 0;
  auto hook = [&](const std::string& name) {
    return [&, name](const Tensor&) {
      events.push_back(name);
      if (queued++ == 0) queue_backward_callback([&] { events.push_back("callback"); });
    };
  };
  a.register_post_accumulate_grad_hook(hook("a"));
  b.register_post_accumulate_grad_hook(hook("b"));
  (a * b).backward();
  REQUIRE(events.size() == 3);
  CHECK(events[2] == "callback");
  CHECK_THROWS_WITH_AS(queue_backward_callback([] {}), doctest::Contains("no backward pass is running"),
                       AutogradError);
}
