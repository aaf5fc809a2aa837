// Profiler: scopes, grouping, memory, Chrome trace, per-thread behaviour.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "autograd/autograd.hpp"
#include "autograd/profile_checks.hpp"

using namespace tapegrad;
using test::find_row;

TEST_CASE("profiler: a [100, 100] float32 add allocates 40,000 bytes, and its backward is charged to it") {
  Tensor a = randn({100, 100}).requires_grad_(), b = randn({100, 100}).requires_grad_();
  Profiler prof;
  Tensor y = a + b;
  Tensor s = sum(y);
  s.backward();
  prof.stop();
  std::map<std::string, Profiler::Row> by_op;
  for (auto& r : prof.rows()) by_op[r.op] = r;
  REQUIRE(by_op.count("add"));
  CHECK(by_op["add"].count == 1);
  CHECK(by_op["add"].forward_bytes == 40000);
  CHECK(by_op["add"].backward_count == 1);
  CHECK(by_op["sum"].forward_bytes >= 4);  // its float32 scalar, and the partial sums of its chunks
  // The seed of ones for the scalar loss is charged to the first node run (sum's backward); sum's
  // backward expands the gradient to [100, 100] (40,000 bytes).
  CHECK(by_op["sum"].backward_bytes >= 40000);
}

TEST_CASE("profiler: peak memory rises by the tensors alive at once, and the start is the live bytes") {
  const int64_t before = storage_stats().live_bytes;
  Profiler prof;
  {
    Tensor x = zeros({1000});      // 4,000 bytes
    Tensor y = zeros({250, 100});  // 100,000 bytes, both alive
  }
  Tensor z = zeros({10});  // after both were freed: the peak stays
  prof.stop();
  const auto m = prof.memory();
  CHECK(m.start_bytes == before);
  CHECK(m.peak_bytes == before + 104000);
  CHECK(m.end_bytes == before + 40);
  CHECK(prof.table().find("peak memory") != std::string::npos);
}

TEST_CASE("profiler: scopes nest, ops group under them, and the op table is unchanged by user scopes") {
  Tensor w = randn({8, 4}).requires_grad_();
  Tensor x = randn({2, 8});
  Profiler prof;
  {
    ProfileScope step("step");
    Tensor h;
    {
      ProfileScope layer("layer");
      h = tanh(matmul(x, w));
    }
    Tensor loss = sum(h);
    loss.backward();
  }
  prof.stop();
  auto rows = prof.grouped_rows(GroupBy::scope);
  const Profiler::Row* step = find_row(rows, "step");
  const Profiler::Row* layer = find_row(rows, "step/layer");
  const Profiler::Row* tanh_row = find_row(rows, "step/layer/tanh");
  const Profiler::Row* sum_row = find_row(rows, "step/sum");
  REQUIRE(step);
  REQUIRE(layer);
  REQUIRE(tanh_row);
  REQUIRE(sum_row);
  CHECK(step->scope);
  CHECK(step->depth == 0);
  CHECK(layer->depth == 1);
  CHECK(tanh_row->depth == 2);
  CHECK_FALSE(tanh_row->scope);
  CHECK(step->count == 1);
  CHECK(layer->forward_seconds <= step->forward_seconds);
  // backward nodes are charged to the scope their op was recorded under, even though backward ran
  // outside "layer"
  CHECK(tanh_row->backward_count == 1);
  CHECK(layer->backward_count == 2);  // tanh and gemm
  CHECK(layer->forward_bytes == find_row(rows, "step/layer/gemm")->forward_bytes + tanh_row->forward_bytes);
  // the op table ignores user scopes
  for (auto& r : prof.grouped_rows(GroupBy::op)) {
    CHECK(r.depth == 0);
    CHECK_FALSE(r.scope);
  }
  // max_depth cuts the scope table
  for (auto& r : prof.grouped_rows(GroupBy::scope, 0)) CHECK(r.depth == 0);
  CHECK(prof.table(GroupBy::scope).find("    tanh") != std::string::npos);
}

TEST_CASE("profiler: a composite scope is one op-table row with its parts indented") {
  Tensor x = randn({3, 5}).requires_grad_();
  Profiler prof;
  for (int i = 0; i < 2; ++i) {
    ProfileScope composite("my_softplus", ScopeKind::composite);
    Tensor y = log(exp(x) + 1.0);
    sum(y).backward();
  }
  prof.stop();
  auto rows = prof.grouped_rows(GroupBy::op);
  const Profiler::Row* c = find_row(rows, "my_softplus");
  REQUIRE(c);
  CHECK(c->scope);
  CHECK(c->count == 2);
  const Profiler::Row* e = find_row(rows, "my_softplus/exp");
  REQUIRE(e);
  CHECK(e->depth == 1);
  CHECK(e->count == 2);
  CHECK(c->backward_count >= 2 * 3);  // exp, add_scalar, log, sum
  // flat rows still count every op once
  std::map<std::string, Profiler::Row> by_op;
  for (auto& r : prof.rows()) by_op[r.op] = r;
  CHECK(by_op["exp"].count == 2);
  CHECK_FALSE(by_op.count("my_softplus"));
}

TEST_CASE("profiler: no profiler, no change: same results, nothing recorded by scopes, hooks off") {
  Tensor w = tensor({0.5, -1.0, 2.0}).requires_grad_();
  auto run = [&] {
    w.zero_grad();
    Tensor y;
    {
      ProfileScope s("outside any profiler");
      y = sum(tanh(w * 3.0));
    }
    y.backward();
    return std::make_pair(y.to_vector(), w.grad().to_vector());
  };
  auto plain = run();
  CHECK_FALSE(profiler_enabled());
  std::pair<std::vector<double>, std::vector<double>> profiled;
  {
    Profiler prof;
    CHECK(profiler_enabled());
    profiled = run();
  }
  CHECK_FALSE(profiler_enabled());
  CHECK(plain == profiled);  // bitwise
  // A scope opened before the profiler started records nothing when it closes.
  Profiler prof;
  {
    std::optional<ProfileScope> early;
    prof.stop();
    Profiler second;
    early.emplace("opened in the second profiler");
    second.stop();
    CHECK(second.grouped_rows(GroupBy::scope).size() == 1);
  }
  CHECK(prof.grouped_rows(GroupBy::scope).empty());
}

TEST_CASE("profiler: per thread — ops on another thread are not seen, two profilers are independent") {
  Tensor w = randn({4, 4}).requires_grad_();
  Profiler prof;
  int64_t other_count = 0;
  std::thread t([&] {
    Tensor y = sum(tanh(w));  // no profiler on this thread
    y.backward();
    Profiler mine;
    {
      ProfileScope s("worker");
      Tensor z = exp(w);
    }
    mine.stop();
    for (auto& r : mine.rows()) other_count += r.count;
  });
  t.join();
  {
    ProfileScope s("main");
    Tensor z = sigmoid(w);
  }
  prof.stop();
  std::set<std::string> ops;
  for (auto& r : prof.rows()) ops.insert(r.op);
  CHECK(ops == std::set<std::string>{"sigmoid"});
  CHECK(other_count == 1);  // exp
  CHECK(find_row(prof.grouped_rows(GroupBy::scope), "main/sigmoid"));
}

TEST_CASE("profiler: the Chrome trace is valid JSON with nested spans, forward before backward") {
  Tensor w = randn({16, 8}).requires_grad_();
  Tensor x = randn({4, 16});
  Profiler prof;
  for (int step = 0; step < 2; ++step) {
    ProfileScope s("step");
    Tensor h;
    {
      ProfileScope l("layer1");
      h = relu(matmul(x, w));
    }
    {
      ProfileScope l("head", ScopeKind::composite);
      h = sum(h * h);
    }
    h.backward();
  }
  prof.stop();
  const auto trace = nlohmann::json::parse(prof.chrome_trace());
  const auto summary = test::check_chrome_trace(trace);
  int64_t recorded = 0;
  for (auto& r : prof.rows()) recorded += r.count;
  CHECK(recorded == 2 * 4);  // gemm, relu, mul, sum
  CHECK(summary.forward_ops == recorded);
  CHECK(summary.backward_ops >= 2 * 4);
  CHECK(summary.scope_names.count("layer1"));
  CHECK(summary.backward_scope_names.count("layer1"));
  CHECK(summary.memory_samples > 0);
  const auto path = std::filesystem::temp_directory_path() / "tapegrad_test_trace.json";
  prof.write_chrome_trace(path.string());
  std::ifstream f(path);
  CHECK(nlohmann::json::parse(f) == trace);
  std::filesystem::remove(path);
  const auto j = nlohmann::json::parse(prof.json());
  CHECK(j["memory"]["peak_bytes"].get<int64_t>() >= j["memory"]["start_bytes"].get<int64_t>());
  CHECK(j["by_scope"].size() > 0);
  CHECK(j["ops"].size() > 0);
}

TEST_CASE("profiler: the trace keeps at most max_trace_events spans, and the tables stay exact") {
  Tensor w = randn({4}).requires_grad_();
  Profiler prof(10);
  for (int i = 0; i < 20; ++i) Tensor y = tanh(w);
  prof.stop();
  const auto j = nlohmann::json::parse(prof.json());
  CHECK(j["dropped_trace_events"].get<int64_t>() == 2 * 20 - 10);  // an op span and a memory sample each
  CHECK(prof.rows().at(0).count == 20);
}
