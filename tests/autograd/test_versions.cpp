// Saved tensors carry a version: data written in place after an op saved it is an error naming
// the op, the tensor and both versions (PyTorch's SavedVariable check), never a wrong gradient.
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"
#include "autograd/inplace_check.hpp"

using namespace tapegrad;

TEST_CASE("a raw write into a saved input is refused at backward, with op, input and versions named") {
  Tensor x = tensor({1, 2, 3}).requires_grad_();
  Tensor loss = sum(x * x);  // mul saves both of its inputs
  const uint64_t saved = x.version();
  x.mutable_data<float>()[0] = 100;  // without the check: x.grad()[0] = 200 instead of 2
  CHECK(x.version() == saved + 1);
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("input 0 of 'mul' (float32 [3]) was modified in place"),
                       AutogradError);
  const std::string versions =
      "version " + std::to_string(saved) + " then and is at version " + std::to_string(saved + 1) + " now";
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains(versions.c_str()), AutogradError);
  CHECK_FALSE(x.grad().defined());  // nothing was written before the error
}

TEST_CASE("the check covers the saved output, views, bump_version and saved non-inputs") {
  SUBCASE("exp's saved output") {
    Tensor x = tensor({0.5, 1.0}).requires_grad_();
    Tensor y = exp(x);
    Tensor loss = sum(y);
    y.mutable_data<float>()[1] = 0;
    CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("the output of 'exp'"), AutogradError);
  }
  SUBCASE("a write through a view of the saved tensor") {
    Tensor x = tensor({1, 2, 3, 4}).requires_grad_();
    Tensor loss = sum(log(x));
    Tensor view = x.detach().reshape({2, 2});
    view.mutable_data<float>()[3] = 9;  // the view shares x's storage and its version counter
    CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("input 0 of 'log'"), AutogradError);
  }
  SUBCASE("a write through a pointer taken earlier, then bump_version") {
    Tensor x = tensor({1, 2}).requires_grad_();
    float* p = x.detach().mutable_data<float>();
    Tensor loss = sum(x * x);
    p[0] = 7;
    x.bump_version();
    CHECK_THROWS_AS(loss.backward(), AutogradError);
  }
  SUBCASE("an index tensor saved by index_select") {
    Tensor x = tensor({1, 2, 3}).requires_grad_();
    Tensor index = index_tensor({0, 2});
    Tensor loss = sum(index_select(x, 0, index));
    index.mutable_data<int64_t>()[0] = 1;
    CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("saved tensor 0 (not an input) of 'index_select' (int64 [2])"),
                         AutogradError);
  }
}

TEST_CASE("writes the backward does not depend on are allowed, and gradients stay right") {
  Tensor x = tensor({1, 2, 3}).requires_grad_();
  Tensor y = tensor({4, 5, 6}).requires_grad_();
  Tensor loss = sum(x + y * 2.0);  // add saves nothing; mul by a scalar saves nothing
  x.mutable_data<float>()[0] = 50;
  y.mutable_data<float>()[0] = 50;
  loss.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{1, 1, 1});
  CHECK(y.grad().to_vector() == std::vector<double>{2, 2, 2});
}

TEST_CASE("a write before the op is recorded is fine: the version is taken when the op saves") {
  Tensor x = tensor({1, 2}).requires_grad_();
  x.mutable_data<float>()[0] = 3;
  Tensor loss = sum(x * x);
  loss.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{6, 4});
}

TEST_CASE("accumulating into a leaf's grad bumps the grad's version") {
  Tensor w = tensor({1, 2}).requires_grad_();
  sum(w * 3.0).backward();
  Tensor g = w.grad();
  const uint64_t before = g.version();
  sum(w * 3.0).backward();  // accumulated in place into the same buffer
  CHECK(w.grad().is_same(g));  // the same buffer, written in place
  CHECK(w.grad().version() > before);
  CHECK(w.grad().to_vector() == std::vector<double>{6, 6});
}

TEST_CASE("custom ops' inputs are saved and checked like built-ins") {
  Tensor x = tensor({2.0}, DType::f64).requires_grad_();
  Tensor y = custom_op(
      "cube", {x}, [](const std::vector<Tensor>& in) { return in[0] * in[0] * in[0]; },
      [](const std::vector<Tensor>& in, const Tensor& grad, const Tensor&) -> Grads { return {grad * in[0] * in[0] * 3.0}; });
  x.mutable_data<double>()[0] = 5;
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("input 0 of 'cube'"), AutogradError);
}

TEST_CASE("every registered op: an in-place write after forward is refused or leaves the gradient unchanged") {
  InplaceWriteCounts counts = check_inplace_writes_on_registry();
  CHECK(counts.refused >= 40);
  CHECK(counts.unaffected >= 20);
}

TEST_CASE("a write made during backward to a tensor a later node saved is refused when that node runs") {
  SUBCASE("the pass accumulates into a leaf's grad() that the graph saved") {
    Tensor w = tensor({1, 2}).requires_grad_();
    Tensor x = tensor({3, 4}).requires_grad_();
    sum(w * 3.0).backward();  // w.grad() = [3, 3]
    // mul saves w.grad(); the pass below adds 2w into that same buffer before mul's backward runs
    // (recorded later, w * w runs first; separate statements fix the recording order)
    Tensor y = sum(x * w.grad());
    Tensor z = sum(w * w);
    Tensor loss = y + z;
    CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("was modified in place"), AutogradError);
  }
  SUBCASE("a post-accumulate hook steps a parameter that a pending node saved") {
    Tensor w = tensor({1, 2}).requires_grad_();
    Tensor x = tensor({3, 4}).requires_grad_();
    // recorded last, w * 2.0 runs first: w's gradient is complete (its hook fires) before
    // x * w.detach()'s backward runs
    Tensor y = sum(x * w.detach());
    Tensor z = sum(w * 2.0);
    Tensor loss = y + z;
    auto handle = w.register_post_accumulate_grad_hook([](const Tensor& leaf) {
      NoGradGuard no_grad;
      leaf.mutable_data<float>()[0] -= 10.0f;  // an optimizer step inside backward
    });
    CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("was modified in place"), AutogradError);
    handle.remove();
  }
}

TEST_CASE("under create_graph a leaf's grad() is its own tensor: never another leaf's or the caller's") {
  SUBCASE("two leaves fed the same gradient") {
    Tensor w1 = tensor({1, 2}).requires_grad_(), w2 = tensor({3, 4}).requires_grad_();
    Tensor loss = sum(w1 + w2);
    loss.backward(Tensor(), /*retain_graph=*/true, /*create_graph=*/true);
    CHECK_FALSE(w1.grad().is_same(w2.grad()));
    loss.backward();  // accumulates into each grad separately
    CHECK(w1.grad().to_vector() == std::vector<double>{2, 2});
    CHECK(w2.grad().to_vector() == std::vector<double>{2, 2});
  }
  SUBCASE("a leaf's backward with the caller's gradient") {
    Tensor x = tensor({1, 2}).requires_grad_();
    Tensor g = tensor({10, 20});
    x.backward(g, false, /*create_graph=*/true);
    x.backward(tensor({3, 3}));
    CHECK(g.to_vector() == std::vector<double>{10, 20});  // the caller's tensor is untouched
    CHECK(x.grad().to_vector() == std::vector<double>{13, 23});
  }
}
