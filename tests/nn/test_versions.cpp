// Every mutation path the library offers bumps the version counter, so a write between forward
// and backward is refused instead of producing a wrong gradient (or, for cross-entropy's targets,
// an out-of-bounds write in its fused backward).
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"
#include "autograd/inplace_check.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;

namespace {
Tensor batch() { return Tensor(randn({4, 3})); }
}  // namespace

TEST_CASE("an optimizer step between forward and backward is refused") {
  manual_seed(1);
  nn::Linear layer(3, 2);
  optim::SGD sgd(layer.parameters(), optim::SGDOptions(0.1));
  Tensor loss = sum(layer(batch()));
  sum(layer(batch())).backward();  // some earlier gradient, so that step() changes the weight
  sgd.step();
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("input 1 of 'linear'"), AutogradError);
}

TEST_CASE("an initializer or load_state_dict between forward and backward is refused") {
  manual_seed(2);
  nn::Linear layer(3, 2);
  SUBCASE("init::constant_") {
    Tensor loss = sum(layer(batch()));
    nn::init::constant_(layer.weight, 0.5);
    CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("'linear'"), AutogradError);
  }
  SUBCASE("load_state_dict") {
    nn::Linear other(3, 2);
    Tensor loss = sum(layer(batch()));
    layer.load_state_dict(other.state_dict());
    CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("'linear'"), AutogradError);
  }
  CHECK_FALSE(layer.weight.grad().defined());
}

TEST_CASE("editing cross_entropy's targets after forward is an error, not an out-of-bounds write") {
  Tensor logits = randn({4, 3}).requires_grad_();
  Tensor targets = index_tensor({0, 1, 2, 1});
  Tensor loss = nn::F::cross_entropy(logits, targets);
  targets.mutable_data<int64_t>()[2] = 1000000;  // was a heap-buffer-overflow WRITE in the fused backward
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("saved tensor 1 (not an input) of 'cross_entropy' (int64 [4])"),
                       AutogradError);
  CHECK_FALSE(logits.grad().defined());
}

TEST_CASE("every registered op, layers and losses included: in-place writes are refused or harmless") {
  nn::register_ops();
  InplaceWriteCounts counts = check_inplace_writes_on_registry();
  CHECK(counts.refused >= 60);
  CHECK(counts.unaffected >= 20);
}
