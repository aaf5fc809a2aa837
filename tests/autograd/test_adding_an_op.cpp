// docs/adding_an_op.md, compiled and run: its op (adding_an_op.hpp), its checks (here) and its
// benchmark main (bench/user_op_bench.cpp); the last test keeps the page's code identical to them.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/adding_an_op.hpp"
#include "autograd/bench_inputs_check.hpp"

using namespace tapegrad;
using softsign_example::register_softsign;
using softsign_example::softsign;
using softsign_example::softsign_kernel;

namespace {
/// softsign with a wrong backward (1 / (1 + |x|) instead of its square): gradcheck must fail.
Tensor softsign_wrong(const Tensor& x) {
  return custom_op(
      "softsign_wrong", {x}, [](const std::vector<Tensor>& in) { return in[0] / (abs(in[0]) + 1.0); },
      [](const std::vector<Tensor>& in, const Tensor& grad, const Tensor&) -> Grads {
        return {grad / (abs(in[0]) + 1.0)};
      });
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("adding an op: the custom op and the record() version agree, forward and backward") {
  Tensor x = tensor({-3.0, -0.25, 0.5, 2.0}, {2, 2}, DType::f64).requires_grad_();
  Tensor y = tensor({-3.0, -0.25, 0.5, 2.0}, {2, 2}, DType::f64).requires_grad_();
  Tensor a = softsign(x), b = softsign_kernel(y);
  CHECK(a.to_vector() == std::vector<double>{-0.75, -0.2, 0.5 / 1.5, 2.0 / 3.0});
  CHECK(b.to_vector() == a.to_vector());
  CHECK(std::string(b.grad_fn()->name()) == "softsign");
  a.sum().backward();
  b.sum().backward();
  // 1 / (1 + |x|)²: 1/16, 1/1.5625, 1/2.25, 1/9
  CHECK(x.grad().to_vector()[0] == doctest::Approx(1.0 / 16));
  CHECK(x.grad().to_vector()[3] == doctest::Approx(1.0 / 9));
  for (size_t i = 0; i < 4; ++i) CHECK(y.grad().to_vector()[i] == doctest::Approx(x.grad().to_vector()[i]));
  CHECK_THROWS_WITH_AS(softsign_kernel(index_tensor({1, 2})), doctest::Contains("softsign: x must be float32 or float64, got int64"),
                       DTypeError);
}

TEST_CASE("adding an op: registered, it passes gradcheck and gradgradcheck, and a wrong backward fails") {
  register_softsign();
  const OpInfo& op = find_op("softsign");
  for (const OpSample& s : op.samples()) {
    GradcheckResult first = gradcheck(op.fn, s.inputs);        // Jacobian vs central differences
    GradcheckResult second = gradgradcheck(op.fn, s.inputs);   // second order, through create_graph
    CHECK_MESSAGE(first.ok, s.description << ": " << first.message);
    CHECK_MESSAGE(second.ok, s.description << ": " << second.message);
  }
  GradcheckResult bad = gradcheck([](const std::vector<Tensor>& in) { return softsign_wrong(in[0]); }, op.samples()[0].inputs);
  CHECK_FALSE(bad.ok);
  CHECK(bad.message.rfind("gradcheck of 'softsign_wrong': Jacobian mismatch", 0) == 0);
  // its benchmark inputs are float32 at a realistic size, and the op runs on them
  REQUIRE(op.bench);
  OpBench b = op.bench();
  REQUIRE(b.inputs.size() == 1);
  CHECK(b.inputs[0].dtype() == DType::f32);
  CHECK(b.inputs[0].shape() == Shape{256, 1024});
  CHECK_FALSE(b.fn);
  CHECK(op.fn(b.inputs).shape() == Shape{256, 1024});
}

TEST_CASE("adding an op: a registration without a function or samples is refused, naming the op") {
  CHECK_THROWS_WITH_AS(register_op({.name = "half_done", .family = "custom"}),
                       doctest::Contains("op 'half_done' needs a name, a function and samples (no function)"),
                       std::invalid_argument);
  CHECK_THROWS_AS(find_op("half_done"), std::out_of_range);
}

TEST_CASE("every built-in op has float32 benchmark inputs it runs on, forward and backward") {
  // the custom ops of other tests in this binary may lack them; nn's are checked in tests/nn
  int checked = check_bench_inputs_on_registry([](const std::string& family) { return family != "custom"; });
  CHECK(checked >= 80);
}

TEST_CASE("docs/adding_an_op.md: every C++ block is code that this test compiles") {
  const std::string dir = TAPEGRAD_TESTS_DIR;
  const std::string page = read_file(dir + "/../docs/adding_an_op.md");
  const std::string sources = read_file(dir + "/autograd/adding_an_op.hpp") + read_file(dir + "/autograd/test_adding_an_op.cpp") +
                              read_file(dir + "/../bench/user_op_bench.cpp");
  int blocks = 0;
  for (size_t at = page.find("```cpp\n"); at != std::string::npos; at = page.find("```cpp\n", at)) {
    const size_t begin = at + 7, end = page.find("```", begin);
    REQUIRE(end != std::string::npos);
    const std::string block = page.substr(begin, end - begin);
    INFO("block " << blocks + 1 << ":\n" << block);
    CHECK(sources.find(block) != std::string::npos);
    ++blocks;
    at = end + 3;
  }
  CHECK(blocks >= 5);
}
