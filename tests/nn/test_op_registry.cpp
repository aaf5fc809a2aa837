// nn's ops in the op registry without a call to nn::register_ops() (this file includes
// nn/functional.hpp, which queues them), and their benchmark inputs.
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"
#include "autograd/bench_inputs_check.hpp"
#include "nn/functional.hpp"

using namespace tapegrad;

namespace {
int group_runs = 0;
void count_group() {
  ++group_runs;
  register_op({.name = "group_square", .family = "custom", .fn = [](const std::vector<Tensor>& in) { return in[0] * in[0]; },
               .samples = [] { return std::vector<OpSample>{{{randn({2}, DType::f64).requires_grad_()}, "1-D"}}; }});
}
int count_nn_ops() {
  int n = 0;
  for (const OpInfo& op : op_registry()) n += op.family == "nn";
  return n;
}
}  // namespace

TEST_CASE("nn's ops are registered without a call, and nn::register_ops() stays idempotent") {
  // ctest runs each test case in a process of its own: nothing here called register_ops before
  CHECK(find_op("nn.conv2d").family == "nn");
  const int n = count_nn_ops();
  CHECK(n >= 35);
  nn::register_ops();
  nn::register_ops();
  CHECK(count_nn_ops() == n);
  CHECK_THROWS_WITH_AS(register_op_group(nullptr), doctest::Contains("register_op_group: the group function is null"),
                       std::invalid_argument);
}

TEST_CASE("a user's replacement of an nn op survives a later nn::register_ops()") {
  const OpInfo original = find_op("nn.linear");
  OpInfo mine = original;
  mine.family = "custom";
  register_op(mine);
  nn::register_ops();
  CHECK(find_op("nn.linear").family == "custom");
  register_op(original);
}

TEST_CASE("every nn op has float32 benchmark inputs it runs on, forward and backward") {
  CHECK(check_bench_inputs_on_registry([](const std::string& family) { return family == "nn"; }) >= 35);
}

TEST_CASE("a queued group runs once, at the registry's next use") {
  register_op_group(&count_group);
  register_op_group(&count_group);
  CHECK(group_runs == 0);
  CHECK(find_op("group_square").family == "custom");
  CHECK(group_runs == 1);
  register_op_group(&count_group);  // already ran: queuing it again does nothing
  (void)op_registry();
  CHECK(group_runs == 1);
}
