// The profiler grouped by module: scopes named by module paths, composites in the op table.
#include <doctest/doctest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "autograd/profile_checks.hpp"
#include "tapegrad.hpp"

using namespace tapegrad;
using test::find_row;

namespace {

struct Net : nn::UnaryModule {
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::Sequential> body;
  Net() {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8));
    body = register_module("body", std::make_shared<nn::Sequential>(nn::ReLU(), nn::Linear(8, 8), nn::Tanh()));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 2));
  }
  Tensor forward(const Tensor& x) override { return (*fc2)((*body)((*fc1)(x))); }
  std::string repr() const override { return "Net"; }
};

}  // namespace

TEST_CASE("profiler grouped by module: paths of a small Sequential and a custom module") {
  Net net;
  Tensor x = randn({3, 4});
  Profiler prof;
  for (int i = 0; i < 2; ++i) {
    Tensor loss = sum(net(x));
    loss.backward();
  }
  prof.stop();
  auto rows = prof.grouped_rows(GroupBy::scope);
  const Profiler::Row* root = find_row(rows, "Net");
  REQUIRE(root);
  CHECK(root->depth == 0);
  CHECK(root->count == 2);
  const Profiler::Row* fc1 = find_row(rows, "Net/fc1");
  REQUIRE(fc1);
  CHECK(fc1->scope);
  CHECK(fc1->depth == 1);
  const Profiler::Row* inner = find_row(rows, "Net/body/body.1/linear");
  REQUIRE(inner);
  CHECK(inner->count == 2);
  CHECK(inner->backward_count == 2);  // charged to body.1 though backward ran outside it
  CHECK(find_row(rows, "Net/body/body.2/tanh"));
  const Profiler::Row* body = find_row(rows, "Net/body");
  REQUIRE(body);
  CHECK(body->backward_count == 2 * 3);  // relu, linear, tanh
  CHECK(body->forward_bytes == find_row(rows, "Net/body/body.0")->forward_bytes +
                                   find_row(rows, "Net/body/body.1")->forward_bytes +
                                   find_row(rows, "Net/body/body.2")->forward_bytes);
  CHECK(find_row(rows, "sum"));  // outside every module: at the top
  const std::string table = prof.table(GroupBy::scope);
  CHECK(table.find("\n  fc1 ") != std::string::npos);
  CHECK(table.find("\n    body.1 ") != std::string::npos);
  test::check_chrome_trace(nlohmann::json::parse(prof.chrome_trace()));

  // Without a profiler the module call opens nothing, and the results are the same.
  CHECK_FALSE(profiler_enabled());
  Tensor again = net(x);
  Profiler second;
  Tensor profiled = net(x);
  second.stop();
  CHECK(again.to_vector() == profiled.to_vector());
}

TEST_CASE("profiler grouped by module: a GPT's blocks, attention and MLP, forward and backward") {
  Generator gen(3);
  nn::GPT gpt(nn::GPTConfig{.vocab_size = 11, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 8}, gen);
  Tensor idx = index_tensor({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});
  Tensor targets = index_tensor({2, 3, 4, 5, 6, 7, 8, 9}, {2, 4});
  Profiler prof;
  Tensor loss = nn::GPT::loss(gpt(idx), targets);
  loss.backward();
  prof.stop();
  auto rows = prof.grouped_rows(GroupBy::scope);
  for (const char* path :
       {"GPT/wte", "GPT/wpe", "GPT/h.0", "GPT/h.1", "GPT/h.0/h.0.ln_1", "GPT/h.1/h.1.attn",
        "GPT/h.1/h.1.attn/h.1.attn.out_proj", "GPT/h.0/h.0.mlp/h.0.mlp.c_fc", "GPT/ln_f", "GPT/lm_head"}) {
    const Profiler::Row* r = find_row(rows, path);
    REQUIRE_MESSAGE(r, path);
    CHECK_MESSAGE(r->scope, path);
    CHECK_MESSAGE(r->count == 1, path);
    CHECK_MESSAGE(r->backward_count >= 1, path);
  }
  // the blocks are one level below the GPT, their attention one more
  CHECK(find_row(rows, "GPT/h.1")->depth == 1);
  CHECK(find_row(rows, "GPT/h.1/h.1.attn")->depth == 2);
  // MultiheadAttention's forward(q, k, v, ...) called from operator() opens one scope, not two
  CHECK_FALSE(find_row(rows, "GPT/h.1/h.1.attn/h.1.attn"));
  const auto trace = test::check_chrome_trace(nlohmann::json::parse(prof.chrome_trace()));
  CHECK(trace.scope_names.count("h.1.attn"));
  CHECK(trace.backward_scope_names.count("h.1.attn"));
}

TEST_CASE("profiler: composite functions are one op-table row with their ops indented") {
  Generator gen(5);
  nn::MultiheadAttention mha(nn::MultiheadAttentionOptions(8, 2).batch_first(true), gen);
  Tensor x = randn({2, 3, 8});
  Tensor q = randn({1, 2, 4, 3}).requires_grad_(), k = randn({1, 2, 4, 3}), v = randn({1, 2, 4, 3});
  Profiler prof;
  auto r = mha.forward(x, x, x, Tensor(), Tensor(), true);  // the weights need the composite path
  sum(r.output).backward();
  Tensor ref = nn::functional::attention_reference(q, k, v, nn::functional::AttentionOptions().causal(true));
  sum(ref).backward();
  prof.stop();
  auto by_op = prof.grouped_rows(GroupBy::op);
  for (const char* name : {"attention_with_weights", "attention_reference"}) {
    const Profiler::Row* c = find_row(by_op, name);
    REQUIRE_MESSAGE(c, name);
    CHECK(c->scope);
    CHECK(c->depth == 0);
    CHECK(c->count == 1);
    int parts = 0;
    for (auto& row : by_op)
      if (row.path.rfind(std::string(name) + "/", 0) == 0) {
        CHECK(row.depth == 1);
        ++parts;
      }
    CHECK_MESSAGE(parts >= 2, name);
    CHECK(c->backward_count >= parts);
  }
  // the composite's softmax is printed indented under it
  CHECK(prof.table(GroupBy::op).find("\n  softmax") != std::string::npos);
}
