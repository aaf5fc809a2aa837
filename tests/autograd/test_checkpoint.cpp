// Activation checkpointing (autograd/checkpoint.hpp): gradients bitwise equal to the same code
// without checkpointing, random draws replayed, several inputs and outputs, nesting,
// retain_graph, grad(), and the errors (with nothing recorded or changed after them).
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"
#include "error_message.hpp"

using namespace tapegrad;
using tapegrad::testing::contains;
using tapegrad::testing::message_of;

namespace {

/// Bitwise equality of two tensors (to_vector converts float32 exactly).
void check_same(const Tensor& a, const Tensor& b) {
  REQUIRE(a.defined());
  REQUIRE(b.defined());
  CHECK(a.shape() == b.shape());
  CHECK(a.dtype() == b.dtype());
  CHECK(a.to_vector() == b.to_vector());
}

/// A few layers of a small MLP with a random mask: x [4, 6] → [4, 6], parameters w1, w2.
struct Block {
  Tensor w1 = randn({6, 8}).requires_grad_(), w2 = randn({8, 6}).requires_grad_();
  Tensor operator()(const Tensor& x) const {
    Tensor h = tanh(matmul(x, w1));
    Tensor keep = gt(rand(h.shape()), 0.3).to(DType::f32);  // a dropout-like mask from the default generator
    return sigmoid(matmul(h * keep, w2)) + x;
  }
  /// The block through checkpoint (recompute) or as is.
  Tensor run(const Tensor& x, bool recompute) const {
    return recompute ? checkpoint([this](const Tensor& in) { return (*this)(in); }, x) : (*this)(x);
  }
  void zero_grad() {
    w1.zero_grad();
    w2.zero_grad();
  }
};

}  // namespace

TEST_CASE("checkpoint gives the gradients of the plain computation, bitwise, random draws included") {
  manual_seed(1);
  Block block;
  Tensor x0 = randn({4, 6});
  auto run = [&](bool recompute) {
    manual_seed(7);
    Tensor x = x0.detach().requires_grad_();
    block.zero_grad();
    Tensor y = block.run(x, recompute);
    Tensor z = block.run(y, recompute);
    Tensor loss = sum(z * z);
    loss.backward();
    return std::vector<Tensor>{loss, z, x.grad(), block.w1.grad(), block.w2.grad()};
  };
  auto plain = run(false);
  auto ckpt = run(true);
  for (size_t i = 0; i < plain.size(); ++i) check_same(plain[i], ckpt[i]);
}

TEST_CASE("checkpoint records one node per output and a checkpoint node, and restores the generators") {
  manual_seed(3);
  Block block;
  Tensor x = randn({4, 6}).requires_grad_();
  Tensor y = checkpoint([&](const Tensor& in) { return block(in); }, x);
  REQUIRE(y.grad_fn());
  CHECK(std::string(y.grad_fn()->name()) == "checkpoint_output");
  REQUIRE(y.grad_fn()->next().size() == 1);
  const auto& node = y.grad_fn()->next()[0];
  CHECK(std::string(node->name()) == "checkpoint");
  CHECK(node->next().size() == 3);  // x, w1, w2
  // The backward replays the first call's draws and leaves the generator where the forward left it.
  const std::string after_forward = default_generator().state();
  sum(y).backward();
  CHECK(default_generator().state() == after_forward);
}

TEST_CASE("checkpoint handles several inputs and outputs, inputs without gradient and non-tensor captures") {
  manual_seed(5);
  Tensor w = randn({5, 3}).requires_grad_();
  Tensor a0 = randn({4, 5}), b0 = randn({4, 3});
  Tensor idx = index_tensor({2, 0, 1}, {3});  // int64, no gradient
  const double scale = 0.5;                   // a non-tensor capture
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = matmul(in[0], w) * scale;
    Tensor picked = index_select(h, 1, in[2]);
    return std::vector<Tensor>{tanh(picked) * in[1], sum(h * h, {1}), exp(in[1])};
  };
  for (int used : {0, 1, 2}) {  // all outputs in the loss, only the first two, only the second
    CAPTURE(used);
    auto run = [&](bool recompute) {
      Tensor a = a0.detach().requires_grad_(), b = b0.detach().requires_grad_();
      w.zero_grad();
      auto out = recompute ? checkpoint(fn, {a, b, idx}) : fn({a, b, idx});
      REQUIRE(out.size() == 3);
      Tensor loss = used == 2 ? sum(out[1]) : sum(out[0] * out[0]) + sum(out[1]);
      if (used == 0) loss = loss + sum(out[2]);
      loss.backward();
      return std::vector<Tensor>{a.grad(), b.grad(), w.grad(), out[0], out[1], out[2]};
    };
    auto plain = run(false), ckpt = run(true);
    for (size_t i = 0; i < plain.size(); ++i) {
      if (used == 2 && i == 1) continue;  // b gets no gradient from out[1] alone
      check_same(plain[i], ckpt[i]);
    }
  }
}

TEST_CASE("nested checkpoints recompute inside the recomputation and give the same gradients") {
  manual_seed(11);
  Block inner, outer;
  Tensor x0 = randn({4, 6});
  auto run = [&](bool recompute) {
    manual_seed(12);
    Tensor x = x0.detach().requires_grad_();
    for (Tensor* p : {&inner.w1, &inner.w2, &outer.w1, &outer.w2}) p->zero_grad();
    auto body = [&](const Tensor& in) {
      Tensor h = recompute ? checkpoint([&](const Tensor& v) { return inner(v); }, in) : inner(in);
      return outer(h) * 2.0;
    };
    Tensor y = recompute ? checkpoint(body, x) : body(x);
    sum(y * y).backward();
    return std::vector<Tensor>{x.grad(), inner.w1.grad(), inner.w2.grad(), outer.w1.grad(), outer.w2.grad()};
  };
  auto plain = run(false), ckpt = run(true);
  for (size_t i = 0; i < plain.size(); ++i) check_same(plain[i], ckpt[i]);
}

TEST_CASE("retain_graph: each backward recomputes, and the gradients add up as without checkpointing") {
  manual_seed(13);
  Block block;
  Tensor x0 = randn({4, 6});
  auto run = [&](bool recompute) {
    manual_seed(14);
    Tensor x = x0.detach().requires_grad_();
    block.zero_grad();
    Tensor y = block.run(x, recompute);
    Tensor loss = sum(y * y);
    loss.backward(Tensor(), /*retain_graph=*/true);
    Tensor first = x.grad().detach().to(DType::f64);  // a copy: the second backward adds into x.grad
    loss.backward();
    return std::vector<Tensor>{first, x.grad(), block.w1.grad(), block.w2.grad()};
  };
  auto plain = run(false), ckpt = run(true);
  for (size_t i = 0; i < plain.size(); ++i) check_same(plain[i], ckpt[i]);
  // Without retain_graph the checkpoint node is freed like any other.
  Tensor x = x0.detach().requires_grad_();
  Tensor y = checkpoint([&](const Tensor& in) { return block(in); }, x);
  y.backward(ones_like(y));
  CHECK(contains(message_of<AutogradError>([&] { y.backward(ones_like(y)); }), "'checkpoint_output' a second time"));
}

TEST_CASE("grad() through a checkpoint: towards the input or a parameter, without touching .grad") {
  manual_seed(17);
  Block block;
  Tensor x0 = randn({4, 6});
  for (int target : {0, 1, 2}) {  // x, w1, both
    CAPTURE(target);
    auto run = [&](bool recompute) {
      manual_seed(18);
      Tensor x = x0.detach().requires_grad_();
      Tensor y = block.run(x, recompute);
      std::vector<Tensor> wrt = target == 0   ? std::vector{x}
                                : target == 1 ? std::vector{block.w1}
                                              : std::vector{x, block.w1};
      return grad({sum(y * y)}, wrt);
    };
    auto plain = run(false), ckpt = run(true);
    REQUIRE(plain.size() == ckpt.size());
    for (size_t i = 0; i < plain.size(); ++i) check_same(plain[i], ckpt[i]);
    CHECK_FALSE(block.w1.grad().defined());
    CHECK_FALSE(block.w2.grad().defined());
  }
}

TEST_CASE("checkpoint passes the float64 gradient check, and create_graph is a clear error") {
  Tensor w = randn({3, 3}, DType::f64).requires_grad_();
  auto f = [&](const std::vector<Tensor>& in) {
    return checkpoint(
        [&](const std::vector<Tensor>& v) {
          return std::vector<Tensor>{tanh(matmul(v[0], w)) * v[1], sin(v[1])};
        },
        in)[0];
  };
  auto r = gradcheck(f, {randn({2, 3}, DType::f64).requires_grad_(), randn({2, 3}, DType::f64).requires_grad_()});
  CHECK_MESSAGE(r.ok, r.message);
  Tensor fixed = randn({2, 3}, DType::f64);  // an input without gradient; w is reached as a parameter
  auto r_w = gradcheck(
      [&](const std::vector<Tensor>& in) {
        return checkpoint([w = in[0]](const Tensor& v) { return tanh(matmul(v, w)); }, fixed);
      },
      {w});
  CHECK_MESSAGE(r_w.ok, r_w.message);
  // A wrong gradient fails the same check: the checkpoint does not hide it.
  auto wrong = [&](const std::vector<Tensor>& in) {
    return checkpoint(
        [](const Tensor& v) {
          return custom_op(
              "wrong_square", {v}, [](const std::vector<Tensor>& a) { return a[0] * a[0]; },
              [](const std::vector<Tensor>& a, const Tensor& g, const Tensor&) -> Grads {
                return {g * a[0]};  // should be 2·a
              });
        },
        in[0]);
  };
  CHECK_FALSE(gradcheck(wrong, {randn({3}, DType::f64).requires_grad_()}).ok);

  Tensor x = randn({2, 3}, DType::f64).requires_grad_();
  Tensor y = checkpoint([&](const Tensor& v) { return tanh(matmul(v, w)); }, x);
  CHECK(contains(message_of<AutogradError>([&] { grad({sum(y)}, {x}, {}, false, /*create_graph=*/true); }),
                 "create_graph"));
}

TEST_CASE("an input or parameter written in place between forward and backward is an error naming both versions") {
  Block block;
  Tensor x = randn({4, 6}).requires_grad_();
  Tensor data = randn({4, 6});  // no gradient, still read by the recomputation
  Tensor y = checkpoint([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{block(in[0]) * in[1]}; },
                        {x, data})[0];
  data.mutable_data<float>()[0] = 1.f;
  std::string msg = message_of<AutogradError>([&] { sum(y).backward(); });
  CHECK(contains(msg, "'checkpoint'"));
  CHECK(contains(msg, "input 1"));
  CHECK(contains(msg, "version"));
  CHECK_FALSE(x.grad().defined());  // refused before any gradient was written

  Tensor y2 = checkpoint([&](const Tensor& in) { return block(in); }, x);
  block.w2.mutable_data<float>()[0] += 1.f;  // an optimizer step before the backward
  msg = message_of<AutogradError>([&] { sum(y2).backward(); });
  CHECK(contains(msg, "'checkpoint'"));
  CHECK(contains(msg, "float32 [8, 6]"));  // w2, an input of the checkpoint node after x
  CHECK_FALSE(block.w2.grad().defined());
}

TEST_CASE("checkpoint errors name the argument, and leave the graph, the inputs and the generators as they were") {
  manual_seed(21);
  Tensor w = randn({3, 3}).requires_grad_();
  Tensor x = randn({2, 3}).requires_grad_();
  Tensor outside = tanh(x);  // requires grad, has a history of its own
  Tensor plain = randn({2, 3});
  const std::string rng_before = default_generator().state();
  const uint64_t x_version = x.version();
  auto expect = [&](const std::function<void()>& f, const std::string& part) {
    std::string msg = message_of<std::invalid_argument>(f);
    CAPTURE(msg);
    CHECK(contains(msg, "tapegrad::checkpoint"));
    CHECK(contains(msg, part));
    CHECK(default_generator().state() == rng_before);
    CHECK(x.version() == x_version);
    CHECK_FALSE(x.grad().defined());
    CHECK_FALSE(w.grad().defined());
    CHECK(x.is_leaf());
  };
  using V = std::vector<Tensor>;
  expect([&] { checkpoint([](const V&) { return V{}; }, {x}); }, "returned no tensor");
  expect([&] { checkpoint([](const V& in) { return V{in[0] * 2.0, Tensor()}; }, {x}); }, "output 1 is undefined");
  expect([&] { checkpoint([](const V& in) { return V{in[0] * 2.0}; }, {x, Tensor()}); }, "input 1 is undefined");
  expect(
      [&] {
        checkpoint([](const V& in) { return V{in[0] * 2.0, in[1]}; }, {x, plain});
      },
      "output 1 is input 1 itself");
  expect([&] { checkpoint([&](const V& in) { return V{in[0] * 2.0, w}; }, {x}); }, "output 1");
  expect(
      [&] {
        checkpoint([&](const V& in) { return V{in[0] * 2.0, outside}; }, {x});
      },
      "was not produced from its inputs");
  expect(
      [&] {
        checkpoint([&](const V& in) { return V{in[0] * 2.0, zeros({2})}; }, {x});
      },
      "output 1 (float32 [2]) does not require grad");
  expect(
      [&] {
        checkpoint(
            [&](const V& in) {
              rand({2});
              return V{zeros({2, 3}) + in[0].detach()};
            },
            {x});
      },
      "recorded nothing");
  expect([&] { checkpoint([](const V& in) { return V{in[0] * 2.0}; }, {plain}); }, "no input requires grad");
  expect([&] { checkpoint([&](const V& in) { return V{in[0] * outside}; }, {x}); },
         "computed outside it (the output of 'tanh'");
  expect(
      [&] {
        checkpoint(
            [&](const V& in) {
              in[1].mutable_data<float>()[0] = 0;
              return V{in[0] * in[1]};
            },
            {x, plain});
      },
      "wrote in place into input 1");

  // Generators: null ones are refused; a generator fn draws from that is not listed is caught by
  // the recomputation check instead of giving a wrong gradient.
  expect(
      [&] {
        checkpoint([](const V& in) { return V{in[0] * 2.0}; }, {x}, CheckpointOptions().set_generators({nullptr}));
      },
      "null");
  Generator own(99);
  Tensor y = checkpoint([&](const Tensor& v) { return v * rand(v.shape(), DType::f32, own); }, x);
  CHECK(contains(message_of<AutogradError>([&] { sum(y).backward(); }), "not deterministic"));
  Tensor listed = checkpoint([&](const Tensor& v) { return v * rand(v.shape(), DType::f32, own); }, x,
                             CheckpointOptions().add_generator(own));
  sum(listed).backward();
  CHECK(x.grad().defined());

  // After all those errors a checkpoint still works.
  x.zero_grad();
  Tensor ok = checkpoint([&](const Tensor& v) { return matmul(v, w); }, x);
  sum(ok).backward();
  CHECK(x.grad().defined());
  CHECK(w.grad().defined());
}

TEST_CASE("with recording off checkpoint just runs fn") {
  Tensor x = randn({2, 3}).requires_grad_();
  NoGradGuard no_grad;
  Tensor y = checkpoint([](const Tensor& v) { return v * 2.0; }, x);
  CHECK_FALSE(y.requires_grad());
  CHECK(y.to_vector() == (x * 2.0).to_vector());
}
