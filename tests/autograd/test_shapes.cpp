// Shape arithmetic at the edges of int64 (every product of dimensions is checked, and the byte size
// against PTRDIFF_MAX), and undefined (default-constructed) tensors: every accessor throws a clear
// error instead of dereferencing a null handle. Run under UBSan too (make test-sanitize).
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>

#include "autograd/autograd.hpp"

using namespace tapegrad;

namespace {
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
}  // namespace

TEST_CASE("a shape whose element count overflows int64 is a ShapeError naming the op and the shape") {
  CHECK_THROWS_WITH_AS(Shape({1LL << 32, 1LL << 32}).numel(), doctest::Contains("[4294967296, 4294967296]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(zeros({1LL << 32, 1LL << 32}), doctest::Contains("[4294967296, 4294967296]"), ShapeError);
  CHECK_THROWS_WITH_AS(Tensor::empty({kMax, 2}), doctest::Contains("tapegrad::empty"), ShapeError);
  // A zero dimension makes the tensor empty, but the other dimensions must still multiply without
  // overflow: kernels form their partial products (rows, strides) from them.
  CHECK(zeros({0, 1LL << 40}).numel() == 0);
  CHECK(Shape({1LL << 40, 0, 1LL << 20}).numel() == 0);
  CHECK_THROWS_AS(Shape({1LL << 40, 0, 1LL << 40}).numel(), ShapeError);
}

TEST_CASE("arange with more elements than int64 can count is a ShapeError") {
  // The element count was cast from double to int64 unchecked (undefined; 0 elements on x86).
  CHECK_THROWS_WITH_AS(arange(0, 1e300), doctest::Contains("tapegrad::arange"), ShapeError);
  CHECK_THROWS_AS(arange(0, 1, 1e-300), ShapeError);
  CHECK_THROWS_AS(arange(-1e300, 1e300, 1e-300), ShapeError);
  CHECK(arange(1e300, 0).numel() == 0);
  CHECK(arange(0, 3).numel() == 3);
}

TEST_CASE("a tensor whose byte size exceeds PTRDIFF_MAX is refused before allocating") {
  // 2^62 float64 elements: 2^65 bytes, which wrapped to a 0-byte buffer claiming 2^62 elements.
  CHECK_THROWS_WITH_AS(Tensor::empty({1LL << 62}, DType::f64), doctest::Contains("[4611686018427387904]"), ShapeError);
  CHECK_THROWS_WITH_AS(Tensor::empty({1LL << 61}, DType::f32), doctest::Contains("bytes"), ShapeError);
  CHECK_THROWS_AS(ones({1LL << 31, 1LL << 31}, DType::i64), ShapeError);
}

TEST_CASE("reshape refuses a target shape whose product overflows") {
  // (2^62 + 1) · 4 wraps to 4: this was accepted as a view of 4 elements.
  CHECK_THROWS_WITH_AS(reshape(ones({4}), {(1LL << 62) + 1, 4}), doctest::Contains("tapegrad::reshape"), ShapeError);
  // 2^32 · 2^32 wraps to 0: a view of an empty tensor.
  CHECK_THROWS_WITH_AS(reshape(zeros({0}), {1LL << 32, 1LL << 32}), doctest::Contains("tapegrad::reshape"), ShapeError);
  // The known dimensions beside a -1 overflow.
  CHECK_THROWS_WITH_AS(reshape(ones({4}), {1LL << 62, 1LL << 62, -1}), doctest::Contains("tapegrad::reshape"),
                       ShapeError);
  CHECK(reshape(zeros({0}), {1LL << 40, 0}).shape() == Shape{1LL << 40, 0});
}

TEST_CASE("broadcast, expand and cat refuse output shapes that overflow") {
  // Both inputs are empty; the broadcast shape [2^40, 2^40, 0] is not representable.
  CHECK_THROWS_WITH_AS(zeros({1LL << 40, 1, 0}) + zeros({1LL << 40, 0}), doctest::Contains("tapegrad::add"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(expand(ones({1, 1}), {1LL << 32, 1LL << 32}), doctest::Contains("tapegrad::expand"),
                       ShapeError);
  Tensor big = zeros({1LL << 62, 0});
  CHECK_THROWS_WITH_AS(cat({big, big, big}, 0), doctest::Contains("tapegrad::cat"), ShapeError);
}

TEST_CASE("slice with a huge step takes the first element, and its gradient lands there") {
  Tensor x = tensor({1, 2, 3, 4, 5}, DType::f64).requires_grad_();
  CHECK(slice(x, 0, 0, 5, kMax).to_vector() == std::vector<double>{1});
  Tensor y = slice(x, 0, 2, 5, kMax);
  CHECK(y.to_vector() == std::vector<double>{3});
  y.sum().backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 0, 1, 0, 0});
  CHECK(slice(x, 0, 0, kMax, kMax - 1).to_vector() == std::vector<double>{1});
  CHECK(slice(x, 0, 5, kMax, kMax).numel() == 0);
}

TEST_CASE("every accessor of an undefined tensor throws, naming itself") {
  const Tensor u;
  auto message = [](const char* what) {  // doctest::Contains keeps its own copy of the text
    return doctest::Contains(
        (std::string("tapegrad::Tensor::") + what + ": the tensor is undefined (default-constructed)").c_str());
  };
  CHECK_THROWS_WITH_AS(u.item(), message("item"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.numel(), message("numel"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.shape(), message("shape"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.dtype(), message("dtype"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.dim(), message("dim"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.size(0), message("size"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.data<float>(), message("data"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.mutable_data<float>(), message("mutable_data"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.version(), message("version"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.bump_version(), message("bump_version"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.at({0}), message("at"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.to_vector(), message("to_vector"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.requires_grad(), message("requires_grad"), std::invalid_argument);
  Tensor v;
  CHECK_THROWS_WITH_AS(v.requires_grad_(), message("requires_grad_"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.is_leaf(), message("is_leaf"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.grad_fn(), message("grad_fn"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.grad(), message("grad"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(v.set_grad(Tensor()), message("set_grad"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(v.zero_grad(), message("zero_grad"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.detach(), message("detach"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.clone(), message("clone"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.to(DType::f64), message("to"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.t(), message("t"), std::invalid_argument);
  CHECK_THROWS_AS(u.reshape({1}), std::invalid_argument);
  CHECK_THROWS_AS(u.sum(), std::invalid_argument);
  CHECK_THROWS_AS(u.mean(), std::invalid_argument);
  CHECK_THROWS_WITH_AS(u.backward(), "tapegrad::backward: output 0 is undefined", AutogradError);
  // What stays valid on an undefined tensor: the handle queries and printing.
  CHECK_FALSE(u.defined());
  CHECK(u.is_same(Tensor()));
  CHECK(u.to_string() == "tensor(undefined)");
  // A defined tensor whose .grad() is still undefined is the common way to meet one.
  Tensor w = ones({2}).requires_grad_();
  CHECK_THROWS_WITH_AS(w.grad().item(), message("item"), std::invalid_argument);
}

TEST_CASE("transpose of a 0-d tensor (axes 0 and -1, as in PyTorch) is the tensor, other axes are refused") {
  Tensor s = scalar(3.0).requires_grad_();
  Tensor t = transpose(s, 0, -1);
  CHECK(t.dim() == 0);
  CHECK(t.item() == 3.0);
  t.backward();
  CHECK(s.grad().item() == 1.0);
  CHECK_THROWS_WITH_AS(transpose(scalar(1.0), 0, 1), doctest::Contains("tapegrad::transpose"), ShapeError);
}
