// Tensor creation, access, printing, dtype conversion, views and xtensor interop.
#include <doctest/doctest.h>

#include <sstream>

#include "autograd/autograd.hpp"
#include "autograd/interop.hpp"

using namespace tapegrad;

TEST_CASE("creation and queries") {
  Tensor t = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.dtype() == DType::f32);
  CHECK(t.numel() == 6);
  CHECK(t.dim() == 2);
  CHECK(t.size(-1) == 3);
  CHECK(t.at({1, 2}) == 6);
  CHECK(t.at({-1, 0}) == 4);
  CHECK(scalar(2.5).dim() == 0);
  CHECK(scalar(2.5).item() == 2.5);
  CHECK(zeros({2, 2}, DType::f64).dtype() == DType::f64);
  CHECK(full({3}, 7).to_vector() == std::vector<double>{7, 7, 7});
  CHECK(arange(0, 1, 0.25).to_vector() == std::vector<double>{0, 0.25, 0.5, 0.75});
  CHECK(ones({0, 3}).numel() == 0);
  CHECK(Shape{1, 2, 3, 4, 5, 6, 7, 8}.numel() == 40320);  // rank beyond the inline capacity
  CHECK(zeros({1, 1, 1, 1, 1, 1, 1, 2}).numel() == 2);
  CHECK_THROWS_WITH_AS(tensor({1, 2, 3}, {2, 2}), doctest::Contains("3 values for shape [2, 2]"), ShapeError);
  CHECK_THROWS_AS(t.item(), ShapeError);
  CHECK_THROWS_AS(t.at({2, 0}), ShapeError);
  CHECK_THROWS_AS(t.data<double>(), DTypeError);
  CHECK_THROWS_AS(arange(0, 1, 0), std::invalid_argument);
}

TEST_CASE("size(d) of a 0-d tensor is a ShapeError, as in PyTorch") {
  Tensor s = scalar(2.5);
  for (int64_t d : {0, -1, 1}) {
    const std::string expected =
        "tapegrad::size: dimension specified as " + std::to_string(d) + " but the tensor has no dimensions (rank 0";
    CHECK_THROWS_WITH_AS(s.size(d), doctest::Contains(expected.c_str()), ShapeError);
  }
  CHECK_THROWS_WITH_AS(tensor({1, 2}).size(1), doctest::Contains("tapegrad::size: axis 1 is out of range"), ShapeError);
  CHECK(sum(s, {0}).item() == 2.5);  // reductions over axis 0 of a 0-d tensor stay valid
}

TEST_CASE("set_grad names both shapes and dtypes and keeps the old gradient") {
  Tensor x = ones({2}).requires_grad_();
  x.set_grad(tensor({3, 4}));
  CHECK_THROWS_WITH_AS(x.set_grad(ones({2}, DType::f64)),
                       "tapegrad::set_grad: gradient of shape [2] (float64) for a tensor of shape [2] (float32)",
                       ShapeError);
  CHECK_THROWS_WITH_AS(x.set_grad(ones({3})),
                       "tapegrad::set_grad: gradient of shape [3] (float32) for a tensor of shape [2] (float32)",
                       ShapeError);
  CHECK(x.grad().to_vector() == std::vector<double>{3, 4});
}

TEST_CASE("seeded random tensors are reproducible") {
  manual_seed(42);
  Tensor a = randn({100});
  Tensor u = rand({100});
  manual_seed(42);
  CHECK(randn({100}).to_vector() == a.to_vector());
  CHECK(rand({100}).to_vector() == u.to_vector());
  double m = mean(a).item();
  CHECK(std::abs(m) < 0.3);
  for (double v : u.to_vector()) CHECK((v >= 0 && v < 1));
  Generator g(7);
  std::string state = g.state();
  Tensor r1 = randn({5}, DType::f64, g);
  g.set_state(state);
  CHECK(randn({5}, DType::f64, g).to_vector() == r1.to_vector());
}

TEST_CASE("copies are shallow, clone is deep") {
  Tensor a = zeros({2});
  Tensor b = a;
  b.mutable_data<float>()[0] = 5;
  CHECK(a.at({0}) == 5);
  Tensor c = a.clone();
  c.mutable_data<float>()[0] = 1;
  CHECK(a.at({0}) == 5);
  Tensor v = a.reshape({1, 2});
  CHECK(v.impl()->storage.data() == a.impl()->storage.data());
}

TEST_CASE("dtype conversion carries the gradient back") {
  Tensor x = tensor({1, 2}).requires_grad_();
  Tensor y = sum(x.to(DType::f64) * tensor({3, 4}, DType::f64));
  y.backward();
  CHECK(x.grad().dtype() == DType::f32);
  CHECK(x.grad().to_vector() == std::vector<double>{3, 4});
  CHECK(index_tensor({1, 2}).to(DType::f32).to_vector() == std::vector<double>{1, 2});
}

TEST_CASE("printing") {
  std::ostringstream os;
  os << tensor({1, 2, 3, 4}, {2, 2});
  CHECK(os.str().find("[[1, 2]") != std::string::npos);
  CHECK(os.str().find("shape=[2, 2]") != std::string::npos);
  Tensor x = tensor({1}).requires_grad_();
  CHECK((x * 2.0).to_string().find("grad_fn=mul_scalar") != std::string::npos);
  CHECK(arange(0, 100).to_string().find("...") != std::string::npos);
  CHECK(Tensor().to_string() == "tensor(undefined)");
}

TEST_CASE("xtensor interop") {
  xt::xarray<float> a = {{1.f, 2.f}, {3.f, 4.f}};
  Tensor t = from_xarray(a);
  CHECK(t.shape() == Shape{2, 2});
  CHECK(t.at({1, 0}) == 3);
  xt::xarray<float> back = to_xarray<float>(t * 2.0);
  CHECK(back(1, 1) == 8.f);
  CHECK(from_xarray(xt::xarray<double>{1.0, 2.0}).dtype() == DType::f64);
}
