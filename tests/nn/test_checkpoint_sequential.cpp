// Activation checkpointing of models (nn/checkpoint_sequential.hpp, GPT::set_checkpointing): the
// loss, the input gradient and every parameter gradient are bitwise those of the plain forward,
// dropout included, for a deep MLP, the examples' CNN and the GPT; and the errors.
#include <doctest/doctest.h>

#include <functional>
#include <set>
#include <string>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;

namespace {

/// The loss, the input's gradient and every parameter's gradient after one forward + backward.
/// The default generator is seeded the same way before each run (dropout draws the same masks).
std::vector<Tensor> step(nn::Module& model, const std::function<Tensor(const Tensor&)>& forward, const Tensor& x0,
                         uint64_t seed) {
  model.zero_grad();
  Tensor x = x0.detach();
  if (x.dtype() != DType::i64) x.requires_grad_();
  manual_seed(seed);
  Tensor loss = forward(x);
  loss.backward();
  std::vector<Tensor> out{loss};
  if (x.requires_grad()) out.push_back(x.grad());
  for (const auto& p : model.parameters()) out.push_back(p.grad());
  return out;
}

void check_bitwise(const std::vector<Tensor>& plain, const std::vector<Tensor>& ckpt) {
  REQUIRE(plain.size() == ckpt.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    CAPTURE(i);
    REQUIRE(plain[i].defined());
    REQUIRE(ckpt[i].defined());
    CHECK(plain[i].shape() == ckpt[i].shape());
    CHECK(plain[i].to_vector() == ckpt[i].to_vector());
  }
}

/// depth × (Linear, ReLU, Dropout) then a Linear head.
std::shared_ptr<nn::Sequential> deep_mlp(int depth, int64_t width, double p, Generator& gen = default_generator()) {
  auto m = std::make_shared<nn::Sequential>();
  for (int i = 0; i < depth; ++i) {
    m->push_back(std::make_shared<nn::Linear>(width, width));
    m->push_back(std::make_shared<nn::ReLU>());
    m->push_back(std::make_shared<nn::Dropout>(p, gen));
  }
  m->push_back(std::make_shared<nn::Linear>(width, 3));
  return m;
}

Tensor squared(const Tensor& y) { return sum(y * y); }

}  // namespace

TEST_CASE("checkpoint_sequential on a deep MLP with dropout: gradients bitwise equal for every segment count") {
  manual_seed(1);
  auto mlp = deep_mlp(12, 16, 0.2);  // 37 modules
  Tensor x = randn({5, 16});
  auto plain = step(
      *mlp, [&](const Tensor& in) { return squared(mlp->forward(in)); }, x, 42);
  for (int64_t segments : {int64_t(1), int64_t(2), nn::sqrt_segments(mlp->size()), int64_t(10), int64_t(37)}) {
    CAPTURE(segments);
    auto ckpt = step(
        *mlp, [&](const Tensor& in) { return squared(nn::checkpoint_sequential(*mlp, segments, in)); }, x, 42);
    check_bitwise(plain, ckpt);
  }
  // What the forward leaves held for backward: the plain forward keeps every layer's activations,
  // the checkpointed one only the segments' inputs (and the last segment's activations).
  auto held_after_forward = [&](int64_t segments) {
    const int64_t before = storage_stats().live_bytes;
    Tensor y = segments ? nn::checkpoint_sequential(*mlp, segments, x.detach().requires_grad_()) : mlp->forward(x);
    return storage_stats().live_bytes - before;
  };
  const int64_t plain_bytes = held_after_forward(0), sqrt_bytes = held_after_forward(nn::sqrt_segments(mlp->size()));
  CAPTURE(plain_bytes);
  CAPTURE(sqrt_bytes);
  CHECK(sqrt_bytes * 2 < plain_bytes);
  CHECK(nn::sqrt_segments(37) == 7);
  CHECK(nn::sqrt_segments(1) == 1);
  CHECK(nn::sqrt_segments(32) == 6);
}

TEST_CASE("checkpoint_sequential on the examples' CNN with dropout: gradients bitwise equal") {
  manual_seed(2);
  // examples/mnist_cnn.cpp's model, with a Dropout before the head.
  nn::Sequential cnn(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::ReLU(), nn::MaxPool2d(2),
                     nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
                     nn::Linear(64 * 7 * 7, 128), nn::ReLU(), nn::Dropout(0.3), nn::Linear(128, 10));
  Tensor images = rand({3, 1, 28, 28});
  Tensor labels = index_tensor({1, 7, 3}, {3});
  auto loss = [&](const Tensor& logits) { return nn::functional::cross_entropy(logits, labels); };
  auto plain = step(
      cnn, [&](const Tensor& in) { return loss(cnn.forward(in)); }, images, 5);
  for (int64_t segments : {2, 3, 4, 11}) {
    CAPTURE(segments);
    auto ckpt = step(
        cnn, [&](const Tensor& in) { return loss(nn::checkpoint_sequential(cnn, segments, in)); }, images, 5);
    check_bitwise(plain, ckpt);
  }
}

TEST_CASE("a BatchNorm in training mode updates its running statistics once per step, as without checkpointing") {
  auto make = [] {
    manual_seed(5);
    return std::make_shared<nn::Sequential>(nn::Linear(4, 6), nn::BatchNorm1d(6), nn::ReLU(), nn::Linear(6, 3),
                                            nn::BatchNorm1d(3));
  };
  auto plain = make(), ckpt = make();
  Generator g(8);
  for (int s = 0; s < 3; ++s) {
    Tensor x = randn({8, 4}, DType::f32, g);
    auto a = step(*plain, [&](const Tensor& in) {
      Tensor y = (*plain)(in);
      return sum(y * y);
    }, x, 1);
    auto b = step(*ckpt, [&](const Tensor& in) {
      Tensor y = nn::checkpoint_sequential(*ckpt, 3, in);
      return sum(y * y);
    }, x, 1);
    check_bitwise(a, b);
  }
  auto pb = plain->buffers(), cb = ckpt->buffers();
  REQUIRE(pb.size() == cb.size());
  for (size_t i = 0; i < pb.size(); ++i) {
    CAPTURE(i);
    CHECK(pb[i].to_vector() == cb[i].to_vector());  // running mean, var and num_batches_tracked = 3
  }
  // eval mode: the buffers are read, not written, and the recomputed graph's check passes
  plain->eval();
  ckpt->eval();
  Tensor x = randn({8, 4}, DType::f32, g);
  check_bitwise(step(*plain, [&](const Tensor& in) { return sum((*plain)(in)); }, x, 2),
                step(*ckpt, [&](const Tensor& in) { return sum(nn::checkpoint_sequential(*ckpt, 3, in)); }, x, 2));
}

TEST_CASE("a Dropout with its own generator: listed in the options it replays, unlisted it is caught") {
  manual_seed(3);
  Generator own(123);
  auto mlp = deep_mlp(4, 8, 0.5, own);
  Tensor x = randn({4, 8});
  auto run = [&](const std::function<Tensor(const Tensor&)>& f) {
    own = Generator(77);
    return step(*mlp, f, x, 9);
  };
  auto plain = run([&](const Tensor& in) { return squared(mlp->forward(in)); });
  auto ckpt = run([&](const Tensor& in) {
    return squared(nn::checkpoint_sequential(*mlp, 3, in, CheckpointOptions().add_generator(own)));
  });
  check_bitwise(plain, ckpt);
  own = Generator(77);
  Tensor loss = squared(nn::checkpoint_sequential(*mlp, 3, x.detach().requires_grad_()));
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("not deterministic"), AutogradError);
}

TEST_CASE("GPT with checkpointed blocks: loss and gradients bitwise equal, dropout included") {
  manual_seed(4);
  nn::GPTConfig config{.vocab_size = 11, .block_size = 8, .n_layer = 3, .n_head = 2, .n_embd = 16, .dropout = 0.1};
  nn::GPT gpt(config);
  Tensor idx = index_tensor({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2, 3}, {2, 7});
  Tensor targets = index_tensor({2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2, 3, 4}, {2, 7});
  auto forward = [&](const Tensor& in) { return nn::GPT::loss(gpt.forward(in), targets); };
  CHECK_FALSE(gpt.checkpointing());
  auto plain = step(gpt, forward, idx, 6);
  gpt.set_checkpointing(true);
  CHECK(gpt.checkpointing());
  auto ckpt = step(gpt, forward, idx, 6);
  check_bitwise(plain, ckpt);
  // The blocks' outputs are the checkpoints: one checkpoint_output node per block on the path.
  manual_seed(6);
  Tensor logits = gpt.forward(idx);
  int outputs = 0;
  std::vector<const Node*> stack{logits.grad_fn().get()};
  std::set<const Node*> seen;
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (!n || !seen.insert(n).second) continue;
    outputs += std::string(n->name()) == "checkpoint_output";
    for (const auto& e : n->next()) stack.push_back(e.get());
  }
  CHECK(outputs == 3);
  // No checkpointing without recording (generation) or after switching it off.
  {
    NoGradGuard no_grad;
    CHECK_FALSE(gpt.forward(idx).requires_grad());
  }
  gpt.set_checkpointing(false);
  check_bitwise(plain, step(gpt, forward, idx, 6));
}

TEST_CASE("checkpoint_sequential's errors name segments, and parameter-free runs are not checkpointed") {
  nn::Sequential seq(nn::Linear(3, 3), nn::ReLU(), nn::Linear(3, 2));
  Tensor x = randn({2, 3});
  for (int64_t bad : {0, -1, 4}) {
    CAPTURE(bad);
    const std::string want = "segments must be in [1, 3] for a Sequential of 3 modules, got " + std::to_string(bad);
    CHECK_THROWS_WITH_AS(nn::checkpoint_sequential(seq, bad, x), doctest::Contains(want.c_str()),
                         std::invalid_argument);
  }
  nn::Sequential empty;
  CHECK_THROWS_WITH_AS(nn::checkpoint_sequential(empty, 1, x), doctest::Contains("segments must be in [1, 0]"),
                       std::invalid_argument);
  // A first run of parameter-free modules on data that needs no gradient: nothing to recompute.
  nn::Sequential relu_first(nn::ReLU(), nn::Linear(3, 3), nn::Linear(3, 2));
  Tensor y = nn::checkpoint_sequential(relu_first, 3, x);
  REQUIRE(y.grad_fn());
  REQUIRE(y.grad_fn()->next().size() >= 1);
  sum(y).backward();
  for (const auto& p : relu_first.parameters()) CHECK(p.grad().defined());
}
