// Engine behaviour: accumulation, retain_graph, no_grad, detach, grad(), higher order, long chains.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/autograd.hpp"

using namespace tapegrad;

TEST_CASE("leaves accumulate gradients across backward calls until zeroed") {
  Tensor x = tensor({1, 2, 3}).requires_grad_();
  sum(x * x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{2, 4, 6});
  sum(x * 3.0).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{5, 7, 9});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{1, 1, 1});
}

TEST_CASE("a tensor used twice gets both contributions") {
  Tensor x = tensor({2.0}).requires_grad_();
  Tensor y = x * x + x;  // dy/dx = 2x + 1
  y.backward();
  CHECK(x.grad().item() == doctest::Approx(5.0));
}

TEST_CASE("leaves fed the same gradient tensor get buffers of their own") {
  // add's backward hands one tensor to both inputs: a leaf may adopt only a buffer nobody else holds
  Tensor a = tensor({1, 2}).requires_grad_(), b = tensor({3, 4}).requires_grad_();
  sum(a + b).backward();
  REQUIRE(a.grad().defined());
  REQUIRE(b.grad().defined());
  CHECK(a.grad().data<float>() != b.grad().data<float>());
  a.grad().mutable_data<float>()[0] = 7;  // what an optimizer or clip_grad_norm_ does to one leaf
  CHECK(b.grad().to_vector() == std::vector<double>{1, 1});
  sum(a * 2.0 + b).backward();  // a second pass adds into each buffer separately
  CHECK(a.grad().to_vector() == std::vector<double>{9, 3});
  CHECK(b.grad().to_vector() == std::vector<double>{2, 2});
}

TEST_CASE("a leaf adopts a gradient only the engine holds, without a copy") {
  // relu's backward makes a fresh [512, 512] tensor that nothing else keeps: it becomes x's grad
  // as it is, so backward never holds a second copy of it (peak storage shows one buffer of it).
  Tensor x = randn({512, 512}).requires_grad_();
  Tensor g = randn({512, 512});
  Tensor y = relu(x);
  const int64_t bytes = 512 * 512 * 4, before = storage_stats().live_bytes;
  reset_peak_storage();
  y.backward(g);
  CHECK(storage_stats().live_bytes == before + bytes);       // x.grad, nothing else
  CHECK(storage_stats().peak_live_bytes == before + bytes);  // no copy of it on the way
  // the same with retain_graph: the graph then keeps nothing of relu's backward either
  Tensor x2 = randn({512, 512}).requires_grad_();
  Tensor y2 = relu(x2);
  const int64_t before2 = storage_stats().live_bytes;
  reset_peak_storage();
  y2.backward(g, /*retain_graph=*/true);
  CHECK(storage_stats().peak_live_bytes == before2 + bytes);
  // a seed the caller keeps is copied, never adopted: writing to the grad leaves the seed alone
  Tensor z = randn({4}).requires_grad_();
  Tensor seed = tensor({1, 2, 3, 4});
  z.backward(seed);
  z.grad().mutable_data<float>()[0] = 9;
  CHECK(seed.to_vector() == std::vector<double>{1, 2, 3, 4});
}

TEST_CASE("backward on a non-scalar needs an explicit gradient") {
  Tensor x = tensor({1, 2}).requires_grad_();
  Tensor y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("non-scalar"), AutogradError);
  CHECK_THROWS_WITH_AS(y.backward(ones({3})), doctest::Contains("[3]"), AutogradError);
  y.backward(tensor({1, 10}));
  CHECK(x.grad().to_vector() == std::vector<double>{2, 20});
}

TEST_CASE("a second backward through freed buffers names the op, and retain_graph keeps them") {
  Tensor x = tensor({0.5}).requires_grad_();
  Tensor y = tanh(x);
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  CHECK(x.grad().item() == doctest::Approx(2 * (1 - std::pow(std::tanh(0.5), 2))));
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("'tanh'"), AutogradError);
}

TEST_CASE("no_grad records nothing, and detach cuts history") {
  Tensor x = tensor({1, 2}).requires_grad_();
  {
    NoGradGuard guard;
    Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
  }
  CHECK(grad_enabled());
  Tensor d = (x * 2.0).detach();
  CHECK_FALSE(d.requires_grad());
  Tensor z = sum(d * x);
  z.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{2, 4});
  CHECK_THROWS_AS(sum(d).backward(), AutogradError);
}

TEST_CASE("grad() returns gradients without touching .grad") {
  Tensor x = tensor({1, 2, 3}).requires_grad_();
  Tensor w = tensor({4, 5, 6}).requires_grad_();
  Tensor y = sum(x * w);
  auto g = grad({y}, {x, w});
  CHECK(g[0].to_vector() == std::vector<double>{4, 5, 6});
  CHECK(g[1].to_vector() == std::vector<double>{1, 2, 3});
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(w.grad().defined());
  Tensor unused = tensor({1.0}).requires_grad_();
  Tensor y2 = sum(x * 2.0);
  CHECK_THROWS_WITH_AS(grad({y2}, {unused}), doctest::Contains("not used"), AutogradError);
  Tensor y3 = sum(x * 2.0);
  CHECK_FALSE(grad({y3}, {unused}, {}, false, false, /*allow_unused=*/true)[0].defined());
  // gradient with respect to an intermediate tensor
  Tensor h = x * 3.0;
  Tensor out = sum(h * h);
  CHECK(grad({out}, {h})[0].to_vector() == std::vector<double>{6, 12, 18});
}

TEST_CASE("grad() answers an input listed twice twice, leaf or not") {
  Tensor x = tensor({1, 2}).requires_grad_();
  auto g = grad({sum(x * x)}, {x, x});
  REQUIRE(g[0].defined());
  REQUIRE(g[1].defined());
  CHECK(g[0].to_vector() == std::vector<double>{2, 4});
  CHECK(g[1].to_vector() == std::vector<double>{2, 4});
  Tensor h = x * 3.0;
  auto gh = grad({sum(h * h)}, {h, x, h});
  CHECK(gh[0].to_vector() == std::vector<double>{6, 12});
  CHECK(gh[1].to_vector() == std::vector<double>{18, 36});
  CHECK(gh[2].to_vector() == std::vector<double>{6, 12});
}

TEST_CASE("second and third derivatives of tanh through create_graph") {
  const double v = 0.3, t = std::tanh(v);
  Tensor x = tensor({v}, DType::f64).requires_grad_();
  Tensor y = tanh(x);
  Tensor d1 = grad({y}, {x}, {}, false, true)[0];
  Tensor d2 = grad({d1}, {x}, {}, false, true)[0];
  Tensor d3 = grad({d2}, {x})[0];
  CHECK(d1.item() == doctest::Approx(1 - t * t));
  CHECK(d2.item() == doctest::Approx(-2 * t * (1 - t * t)));
  CHECK(d3.item() == doctest::Approx(-2 * (1 - t * t) * (1 - 3 * t * t)));
}

TEST_CASE("Hessian-vector product of a quadratic form") {
  // f(x) = ½ xᵀ A x  →  H = (A + Aᵀ)/2 ... with symmetric A, Hv = A v
  Tensor A = tensor({2, 1, 0, 1, 3, 1, 0, 1, 4}, {3, 3}, DType::f64);
  Tensor x = tensor({1, -1, 2}, DType::f64).requires_grad_();
  Tensor v = tensor({0.5, 1, -1}, DType::f64);
  Tensor f = sum(x * matmul(A, x)) * 0.5;
  Tensor g = grad({f}, {x}, {}, false, true)[0];
  Tensor hv = grad({sum(g * v)}, {x})[0];
  auto expect = matmul(A, v).to_vector();
  auto got = hv.to_vector();
  for (size_t i = 0; i < 3; ++i) CHECK(got[i] == doctest::Approx(expect[i]));
}

TEST_CASE("a chain of 1,000,000 ops backpropagates and is freed without recursion") {
  Tensor x = tensor({0.1}, DType::f64).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 1000000; ++i) y = y * 1.0000001;
  y.backward();
  CHECK(x.grad().item() == doctest::Approx(std::pow(1.0000001, 1000000)).epsilon(1e-9));
  Tensor z = x;
  for (int i = 0; i < 1000000; ++i) z = tanh(z * 1.0001 + 0.0001);
  z = Tensor();  // destroying the graph must not recurse either
  CHECK(true);
}

TEST_CASE("a custom op whose backward returns a wrongly shaped gradient is named") {
  Tensor x = tensor({1, 2, 3}).requires_grad_();
  Tensor y = custom_op(
      "my_op", {x}, [](const std::vector<Tensor>& in) { return in[0] * 2.0; },
      [](const std::vector<Tensor>&, const Tensor& grad, const Tensor&) -> Grads { return {sum(grad)}; });
  CHECK_THROWS_WITH_AS(sum(y).backward(), doctest::Contains("'my_op'"), AutogradError);
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("custom op with create_graph: second derivative of a user-defined cube") {
  auto cube = [](const Tensor& t) {
    return custom_op(
        "cube", {t}, [](const std::vector<Tensor>& in) { return in[0] * in[0] * in[0]; },
        [](const std::vector<Tensor>& in, const Tensor& grad, const Tensor&) -> Grads {
          return {grad * in[0] * in[0] * 3.0};
        });
  };
  Tensor x = tensor({2.0}, DType::f64).requires_grad_();
  Tensor d1 = grad({cube(x)}, {x}, {}, false, true)[0];
  CHECK(d1.item() == doctest::Approx(12.0));
  CHECK(grad({d1}, {x})[0].item() == doctest::Approx(12.0));
}

TEST_CASE("requires_grad_ only on floating leaves") {
  Tensor x = tensor({1.0}).requires_grad_();
  Tensor y = x * 2.0;
  CHECK_THROWS_AS(y.requires_grad_(), AutogradError);
  CHECK_THROWS_AS(index_tensor({1}).requires_grad_(), DTypeError);
}

TEST_CASE("a failed op records nothing and leaves the graph usable") {
  Tensor a = ones({2, 3}).requires_grad_();
  Tensor b = ones({4});
  CHECK_THROWS_AS(a + b, ShapeError);
  Tensor y = sum(a * 2.0);
  y.backward();
  CHECK(a.grad().to_vector() == std::vector<double>(6, 2.0));
}

TEST_CASE("storage returns to the same level after each step") {
  Tensor w = randn({64, 32}).requires_grad_();
  Tensor x = randn({16, 64});
  auto step = [&] {
    Tensor loss = mean(tanh(matmul(x, w)));
    loss.backward();
    w.zero_grad();
  };
  step();
  const int64_t base = storage_stats().live_bytes;
  for (int i = 0; i < 100; ++i) {
    step();
    CHECK(storage_stats().live_bytes == base);
  }
}
