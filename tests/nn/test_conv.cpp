// Conv2d and pooling: forward against a naive direct convolution, output shapes, gradients of
// the registered ops (gradcheck), and errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;

namespace {
/// y[n,o,p,q] = b[o] + Σ W[o,c,i,j]·x[n,c,p·s−pad+i·d, q·s−pad+j·d], straight from the definition.
std::vector<double> naive_conv(const Tensor& x, const Tensor& w, const Tensor& b, F::Size2 s, F::Size2 pad, F::Size2 d,
                               int64_t oh, int64_t ow) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), O = w.size(0);
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t p = 0; p < oh; ++p)
        for (int64_t q = 0; q < ow; ++q) {
          double acc = b.defined() ? b.at({o}) : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t i = 0; i < w.size(2); ++i)
              for (int64_t j = 0; j < w.size(3); ++j) {
                int64_t ih = p * s.h - pad.h + i * d.h, iw = q * s.w - pad.w + j * d.w;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W) acc += w.at({o, c, i, j}) * x.at({n, c, ih, iw});
              }
          out.push_back(acc);
        }
  return out;
}
}  // namespace

TEST_CASE("conv2d matches a naive direct convolution") {
  Generator g(3);
  struct Case { F::Size2 stride, pad, dil; bool bias; };
  for (Case c : {Case{1, 0, 1, true}, Case{1, 1, 1, false}, Case{2, 1, 1, true}, Case{{2, 1}, {0, 2}, {2, 1}, true}}) {
    Tensor x = randn({2, 3, 7, 6}, DType::f32, g), w = randn({4, 3, 3, 2}, DType::f32, g), b = randn({4}, DType::f32, g);
    Tensor bias = c.bias ? b : Tensor();
    Tensor y = F::conv2d(x, w, bias, c.stride, c.pad, c.dil);
    REQUIRE(y.dim() == 4);
    auto expect = naive_conv(x, w, bias, c.stride, c.pad, c.dil, y.size(2), y.size(3));
    auto got = y.to_vector();
    REQUIRE(got.size() == expect.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(expect[i]).epsilon(1e-4));
  }
}

TEST_CASE("conv2d output shapes follow the window formula") {
  nn::Conv2d conv(nn::Conv2dOptions(1, 8, 5).padding(2));
  CHECK(conv(zeros({2, 1, 28, 28})).shape() == Shape{2, 8, 28, 28});
  nn::Conv2d strided(nn::Conv2dOptions(3, 4, {3, 2}).stride(2).dilation({1, 2}));
  CHECK(strided(zeros({1, 3, 9, 9})).shape() == Shape{1, 4, 4, 4});  // (9−2−1)/2+1, (9−2·1−1)/2+1
}

TEST_CASE("pooling forward values and shapes") {
  Tensor x = arange(0, 16).reshape({1, 1, 4, 4});
  CHECK(F::max_pool2d(x, 2).to_vector() == std::vector<double>{5, 7, 13, 15});
  CHECK(F::avg_pool2d(x, 2).to_vector() == std::vector<double>{2.5, 4.5, 10.5, 12.5});
  // padding counts as −∞ for max, as 0 (in the divisor) for average
  CHECK(F::max_pool2d(x, 3, 2, 1).to_vector() == std::vector<double>{5, 7, 13, 15});
  CHECK(F::avg_pool2d(x, 3, 2, 1).at({0, 0, 0, 0}) == doctest::Approx((0 + 1 + 4 + 5) / 9.0));
  nn::MaxPool2d pool(2);
  CHECK(pool(zeros({3, 2, 28, 28})).shape() == Shape{3, 2, 14, 14});
}

TEST_CASE("max_pool2d matches a naive window maximum, on the 2x2 fast path and the general one") {
  Generator g(11);
  struct Case { F::Size2 k, s, p; };
  for (Case c : {Case{2, 2, 0}, Case{3, 2, 1}, Case{{2, 3}, {1, 2}, {1, 1}}}) {
    Tensor x = randn({2, 3, 7, 6}, DType::f32, g);
    Tensor y = F::max_pool2d(x, c.k, c.s, c.p);
    auto got = y.to_vector();
    size_t at = 0;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t ch = 0; ch < 3; ++ch)
        for (int64_t p = 0; p < y.size(2); ++p)
          for (int64_t q = 0; q < y.size(3); ++q) {
            double best = -1e300;
            for (int64_t i = 0; i < c.k.h; ++i)
              for (int64_t j = 0; j < c.k.w; ++j) {
                int64_t ih = p * c.s.h - c.p.h + i, iw = q * c.s.w - c.p.w + j;
                if (ih >= 0 && ih < 7 && iw >= 0 && iw < 6) best = std::max(best, x.at({n, ch, ih, iw}));
              }
            CHECK(got[at++] == best);
          }
  }
  // a NaN in a window wins it (and takes its gradient), on both paths
  const double nan = std::nan("");
  Tensor x = tensor({1, 2, 3, 4, 5, nan, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {1, 1, 4, 4}).requires_grad_();
  Tensor y = F::max_pool2d(x, 2);
  CHECK(std::isnan(y.to_vector()[0]));
  CHECK(y.to_vector()[1] == 8);
  y.sum().backward();
  CHECK(x.grad().to_vector()[5] == 1);
  CHECK(x.grad().to_vector()[0] + x.grad().to_vector()[1] + x.grad().to_vector()[4] == 0);
  CHECK(std::isnan(F::max_pool2d(x.detach(), 3, 1, 1).to_vector()[0]));
}

TEST_CASE("max_pool2d sends the gradient to the window's maximum") {
  Tensor x = tensor({1, 9, 3, 4, 5, 6, 7, 8, 2, 0, 1, 1, 3, 2, 1, 0}, {1, 1, 4, 4}).requires_grad_();
  F::max_pool2d(x, 2).sum().backward();
  // the last window holds a tie (1, 1, 1): the first maximum takes the gradient
  CHECK(x.grad().to_vector() == std::vector<double>{0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0});
}

TEST_CASE("max_pool2d's backward on wide planes: every input gets its window's gradient or 0, an empty batch works") {
  // Rows of 2 x 19 windows (vector batches and a tail), small integers so that windows tie; the
  // gradient lands on the first maximum in scan order and every other input of the window is 0.
  std::vector<double> values(2 * 3 * 6 * 38);
  for (size_t k = 0; k < values.size(); ++k) values[k] = static_cast<double>((k * 7919 + k / 5) % 3);
  Generator g(5);
  Tensor x = tensor(values, {2, 3, 6, 38}).to(DType::f32).requires_grad_();
  Tensor y = F::max_pool2d(x, 2);
  Tensor up = add(rand(y.shape(), DType::f32, g), 1.0);
  y.backward(up);
  const auto xv = x.detach().to_vector(), gv = x.grad().to_vector(), uv = up.to_vector();
  size_t o = 0;
  for (int64_t plane = 0; plane < 6; ++plane)
    for (int64_t p = 0; p < 3; ++p)
      for (int64_t q = 0; q < 19; ++q, ++o) {
        const size_t base = static_cast<size_t>(plane * 6 * 38 + 2 * p * 38 + 2 * q);
        const size_t taps[4] = {base, base + 1, base + 38, base + 39};
        size_t first = taps[0];
        for (size_t t : taps)
          if (xv[t] > xv[first]) first = t;
        for (size_t t : taps) CHECK(gv[t] == (t == first ? uv[o] : 0.0));
      }
  Tensor empty = zeros({0, 3, 4, 4}).requires_grad_();
  Tensor e = F::max_pool2d(empty, 2);
  CHECK(e.shape() == Shape{0, 3, 2, 2});
  e.sum().backward();
  CHECK(empty.grad().shape() == Shape{0, 3, 4, 4});
}

TEST_CASE("conv and pooling ops pass gradcheck and gradgradcheck") {
  nn::register_ops();
  for (const char* name : {"nn.conv2d", "nn.conv2d_strided_dilated", "nn.im2col", "nn.col2im", "nn.max_pool2d",
                           "nn.max_pool2d_overlapping", "nn.avg_pool2d", "nn.linear"}) {
    const OpInfo& op = find_op(name);
    for (auto& s : op.samples()) {
      auto r = gradcheck(op.fn, s.inputs);
      CHECK_MESSAGE(r.ok, name, ": ", s.description, ": ", r.message);
      auto rr = gradgradcheck(op.fn, s.inputs);
      CHECK_MESSAGE(rr.ok, name, ": ", s.description, ": ", rr.message);
    }
  }
}

TEST_CASE("gradcheck catches a wrong conv gradient") {
  // conv2d with the weight gradient scaled by 2 through a custom op must fail the check
  auto wrong = [](const std::vector<Tensor>& in) {
    return custom_op("bad_conv", {in[0], in[1]}, [](const std::vector<Tensor>& v) { return F::conv2d(v[0], v[1]); },
                     [](const std::vector<Tensor>& v, const Tensor& g, const Tensor&) -> Grads {
                       GradModeGuard on(true);
                       Tensor a = v[0].detach().requires_grad_(), b = v[1].detach().requires_grad_();
                       auto gs = grad({F::conv2d(a, b)}, {a, b}, {g.detach()});
                       return {gs[0], gs[1] * 2.0};
                     });
  };
  Generator g(5);
  auto r = gradcheck(wrong, {randn({1, 1, 3, 3}, DType::f64, g).requires_grad_(), randn({1, 1, 2, 2}, DType::f64, g).requires_grad_()});
  CHECK_FALSE(r.ok);
}

TEST_CASE("conv and pooling errors name the op and the shapes") {
  Tensor x = zeros({1, 3, 5, 5});
  CHECK_THROWS_WITH_AS(F::conv2d(x, zeros({2, 4, 3, 3})), doctest::Contains("conv2d"), ShapeError);
  CHECK_THROWS_WITH_AS(F::conv2d(zeros({3, 5, 5}), zeros({2, 3, 3, 3})), doctest::Contains("[3, 5, 5]"), ShapeError);
  CHECK_THROWS_WITH_AS(F::conv2d(x, zeros({2, 3, 7, 7})), doctest::Contains("does not fit"), ShapeError);
  CHECK_THROWS_AS(F::conv2d(x, zeros({2, 3, 3, 3}), zeros({3})), ShapeError);
  CHECK_THROWS_AS(F::conv2d(x, zeros({2, 3, 3, 3}), Tensor(), 0), ShapeError);
  CHECK_THROWS_AS(F::conv2d(x, zeros({2, 3, 3, 3}, DType::f64)), DTypeError);
  CHECK_THROWS_WITH_AS(F::max_pool2d(x, 7), doctest::Contains("max_pool2d"), ShapeError);
  CHECK_THROWS_AS(F::max_pool2d(x, 2, 2, 2), ShapeError);  // padding above kernel/2
  CHECK_THROWS_AS(F::avg_pool2d(zeros({5, 5}), 2), ShapeError);
  CHECK_THROWS_AS(F::col2im(zeros({3, 3}), {1, 1, 3, 3}, 2), ShapeError);
}

TEST_CASE("window sizes that overflow int64 are ShapeErrors, not wrapped geometry") {
  Tensor x = ones({1, 1, 3, 3});
  // dilation 2^62 · (5 - 1) wraps to 0: a 5-tap kernel spanning 2^64 pixels looked like it fit.
  CHECK_THROWS_WITH_AS(F::im2col(x, 5, 1, 0, 1LL << 62), doctest::Contains("im2col"), ShapeError);
  CHECK_THROWS_WITH_AS(F::col2im(zeros({25, 9}), {1, 1, 3, 3}, 5, 1, 0, 1LL << 62), doctest::Contains("col2im"),
                       ShapeError);
  CHECK_THROWS_AS(F::conv2d(x, ones({1, 1, 5, 5}), Tensor(), 1, 0, 1LL << 62), ShapeError);
  // 2 · padding overflows (caught by UBSan in the sanitize build; a ShapeError either way).
  const int64_t huge = std::numeric_limits<int64_t>::max();
  CHECK_THROWS_AS(F::im2col(x, 1, 1, huge), ShapeError);
  CHECK_THROWS_AS(F::max_pool2d(x, 3, 1, huge), ShapeError);
  CHECK_THROWS_AS(F::avg_pool2d(x, 3, 1, huge), ShapeError);
  // channels · kernel taps overflow though each fits: the columns [C·kh·kw, N·oh·ow] cannot exist.
  CHECK_THROWS_WITH_AS(F::im2col(zeros({0, 1LL << 40, 1, 1}), {1, 1LL << 40}, 1, {0, 1LL << 40}),
                       doctest::Contains("im2col"), ShapeError);
}
