// Profiler, anomaly mode and Graphviz export.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <thread>

#include "autograd/autograd.hpp"

using namespace tapegrad;

TEST_CASE("profiler counts ops and times forward and backward per op type") {
  Tensor w = randn({8, 4}).requires_grad_();
  Tensor x = randn({2, 8});
  Profiler prof;
  for (int i = 0; i < 3; ++i) {
    Tensor loss = sum(tanh(matmul(x, w)));
    loss.backward();
  }
  prof.stop();
  Tensor after = tanh(w);  // not recorded once stopped
  std::map<std::string, Profiler::Row> by_op;
  for (auto& r : prof.rows()) by_op[r.op] = r;
  REQUIRE(by_op.count("gemm"));
  CHECK(by_op["gemm"].count == 3);
  CHECK(by_op["tanh"].count == 3);
  CHECK(by_op["tanh"].backward_count == 3);
  CHECK(by_op["tanh"].saved_bytes >= 3 * 2 * 4 * 4);  // tanh saves its output
  CHECK(by_op["gemm"].forward_seconds > 0);
  CHECK(by_op["gemm"].backward_seconds > 0);
  CHECK(prof.table().find("gemm") != std::string::npos);
  CHECK(prof.json().find("\"backward_seconds\"") != std::string::npos);
}

TEST_CASE("profiler: work between ops that allocates is charged to the next op unless it is NotAnOpScope") {
  Tensor w = randn({4}).requires_grad_();
  auto forward_of_tanh = [&](bool excluded) {
    Profiler prof;
    {
      std::optional<NotAnOpScope> scope;
      if (excluded) scope.emplace();
      Tensor batch = randn({1000});  // a non-op allocation, then 30 ms of "data loading"
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    Tensor y = tanh(w);
    prof.stop();
    for (auto& r : prof.rows())
      if (r.op == "tanh") return r.forward_seconds;
    return -1.0;
  };
  CHECK(forward_of_tanh(false) >= 0.03);  // the documented attribution of plain code between ops
  const double excluded = forward_of_tanh(true);
  CHECK(excluded >= 0);
  CHECK(excluded < 0.01);  // tanh of 4 elements: microseconds, not the 30 ms before it
}

TEST_CASE("anomaly mode names the op that produced NaN, forward and backward") {
  Tensor x = tensor({-1.0, 4.0}).requires_grad_();
  {
    AnomalyMode on;
    CHECK_THROWS_WITH_AS(sqrt(x * 1.0), doctest::Contains("'sqrt'"), AutogradError);
    CHECK_THROWS_WITH_AS(sqrt(x * 1.0), doctest::Contains("'mul_scalar'"), AutogradError);
    Tensor z = tensor({0.0, 4.0}).requires_grad_();
    Tensor y = sum(sqrt(z));  // forward finite; backward divides by 0
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("backward of 'sqrt'"), AutogradError);
  }
  CHECK_FALSE(anomaly_enabled());
  Tensor quiet = sqrt(x);  // off: no check
  CHECK(std::isnan(quiet.at({0})));
}

TEST_CASE("to_dot exports ops, shapes and leaves") {
  Tensor w = ones({3, 2}).requires_grad_();
  Tensor y = sum(relu(matmul(ones({4, 3}), w)));
  std::string dot = to_dot(y);
  CHECK(dot.find("digraph") == 0);
  CHECK(dot.find("gemm\\n[4, 2]") != std::string::npos);
  CHECK(dot.find("relu") != std::string::npos);
  CHECK(dot.find("leaf [3, 2]") != std::string::npos);
  CHECK(dot.find("->") != std::string::npos);
}
