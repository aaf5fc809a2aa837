// Winograd F(2×2, 3×3) convolutions (nn/conv_winograd.hpp) against the im2col path: forward, input
// and weight gradients on odd, tiny and multi-block shapes, float32 and float64; gradcheck and
// gradgradcheck through the Winograd path; thread-count independence; the rule that picks the path.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "nn/conv_winograd.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;
using nn::ConvAlgorithm;
using nn::ConvAlgorithmGuard;

namespace {

/// ‖got − want‖₂ / ‖want‖₂ over all elements (Frobenius norm of the difference, relative).
double relative_error(const Tensor& got, const Tensor& want) {
  auto g = got.to_vector(), w = want.to_vector();
  REQUIRE(g.size() == w.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    diff += (g[i] - w[i]) * (g[i] - w[i]);
    norm += w[i] * w[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

/// The output, input gradient, weight gradient and bias gradient of conv2d(x, w, b) for an
/// upstream gradient of 1.7·(index-dependent) values, under `algorithm`.
std::vector<Tensor> conv_and_grads(ConvAlgorithm algorithm, const Tensor& x, const Tensor& w, const Tensor& b,
                                   F::Size2 padding) {
  ConvAlgorithmGuard guard(algorithm);
  Tensor xs = x.detach().requires_grad_(), ws = w.detach().requires_grad_(), bs = b.detach().requires_grad_();
  Tensor y = F::conv2d(xs, ws, bs, 1, padding);
  Generator g(42);
  Tensor upstream = randn(y.shape(), x.dtype(), g);
  auto grads = grad({y}, {xs, ws, bs}, {upstream});
  return {y.detach(), grads[0], grads[1], grads[2]};
}

struct Case {
  int64_t n, c, o, h, w;
  F::Size2 pad;
};

// Odd sizes, H/W below a tile (4), paddings 0/1/2 (mixed too), batch and channels 1, a batch
// with more tile blocks than a group of 8 (so the weight gradient sums several groups), and rows of
// more than 16 tiles (the float input transform's chunks of 8 tiles: first, inner and last, inside
// the plane or crossing its edges).
const Case kCases[] = {{1, 1, 1, 1, 1, 1},      {2, 3, 4, 7, 5, 1},       {1, 2, 3, 3, 2, 2}, {3, 5, 6, 9, 8, 0},
                       {2, 4, 3, 4, 4, {0, 2}}, {1, 8, 16, 2, 3, 1},      {1, 3, 2, 3, 3, 0}, {2, 6, 5, 6, 11, {2, 1}},
                       {5, 7, 9, 28, 27, 1},    {2, 3, 2, 5, 37, {1, 2}}, {3, 2, 3, 8, 36, 0}};

}  // namespace

TEST_CASE("winograd conv2d matches im2col: forward, input, weight and bias gradients") {
  for (DType dtype : {DType::f32, DType::f64}) {
    const double tol = dtype == DType::f32 ? 1e-5 : 1e-12;
    Generator g(7);
    for (const Case& c : kCases) {
      Tensor x = randn({c.n, c.c, c.h, c.w}, dtype, g), w = randn({c.o, c.c, 3, 3}, dtype, g),
             b = randn({c.o}, dtype, g);
      auto ref = conv_and_grads(ConvAlgorithm::im2col, x, w, b, c.pad);
      auto got = conv_and_grads(ConvAlgorithm::winograd, x, w, b, c.pad);
      for (size_t k = 0; k < 4; ++k) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(to_string(x.shape()));
        CAPTURE(c.pad.h);
        CAPTURE(c.pad.w);
        CAPTURE(k);
        CHECK(got[k].shape() == ref[k].shape());
        CHECK(relative_error(got[k], ref[k]) <= tol);
      }
    }
  }
}

TEST_CASE("winograd conv2d at the small CNN's second layer matches im2col in float32") {
  Generator g(9);
  Tensor x = randn({32, 32, 14, 14}, DType::f32, g), w = randn({64, 32, 3, 3}, DType::f32, g) * 0.1,
         b = randn({64}, DType::f32, g);
  auto ref = conv_and_grads(ConvAlgorithm::im2col, x, w, b, 1);
  auto got = conv_and_grads(ConvAlgorithm::winograd, x, w, b, 1);
  for (size_t k = 0; k < 4; ++k) {
    CAPTURE(k);
    CHECK(relative_error(got[k], ref[k]) <= 1e-5);
  }
}

TEST_CASE("winograd conv2d passes gradcheck and gradgradcheck in float64") {
  ConvAlgorithmGuard guard(ConvAlgorithm::winograd);
  nn::register_ops();
  for (const char* name : {"nn.conv2d", "nn.conv2d_winograd"}) {  // padding 1 and 2, with bias
    const OpInfo& op = find_op(name);
    for (auto& s : op.samples()) {
      CHECK_MESSAGE(gradcheck(op.fn, s.inputs).ok, name);
      CHECK_MESSAGE(gradgradcheck(op.fn, s.inputs).ok, name);
    }
  }
  Generator g(13);
  for (F::Size2 pad : {F::Size2(0), F::Size2(2), F::Size2{1, 0}}) {
    auto fn = [pad](const std::vector<Tensor>& in) { return F::conv2d(in[0], in[1], Tensor(), 1, pad); };
    std::vector<Tensor> in{randn({2, 2, 5, 4}, DType::f64, g).requires_grad_(),
                           randn({3, 2, 3, 3}, DType::f64, g).requires_grad_()};
    auto r = gradcheck(fn, in);
    CHECK_MESSAGE(r.ok, "padding ", pad.h, ",", pad.w, ": ", r.message);
    auto rr = gradgradcheck(fn, in);
    CHECK_MESSAGE(rr.ok, "padding ", pad.h, ",", pad.w, ": ", rr.message);
  }
}

TEST_CASE("both conv algorithms give the same bits at 1 and 2 threads") {
  Generator g(17);
  // Winograd: 8 images of 20×18 (8 tile blocks) and 4 small ones (a single block). im2col at
  // tests/threads' shape (20 images, three groups of 8 for the weight gradient; that test now runs
  // Winograd under auto).
  struct Case { Shape x; ConvAlgorithm algorithm; };
  for (const Case& c : {Case{{8, 16, 20, 18}, ConvAlgorithm::winograd}, Case{{4, 16, 5, 6}, ConvAlgorithm::winograd},
                        Case{{20, 16, 16, 16}, ConvAlgorithm::im2col}}) {
    Tensor x = randn(c.x, DType::f32, g), w = randn({24, 16, 3, 3}, DType::f32, g), b = randn({24}, DType::f32, g);
    const int before = get_num_threads();
    set_num_threads(1);
    auto one = conv_and_grads(c.algorithm, x, w, b, 1);
    set_num_threads(2);
    auto two = conv_and_grads(c.algorithm, x, w, b, 1);
    set_num_threads(before);
    for (size_t k = 0; k < 4; ++k) {
      CAPTURE(to_string(c.x));
      CAPTURE(nn::conv_algorithm_name(c.algorithm));
      CAPTURE(k);
      CHECK(one[k].to_vector() == two[k].to_vector());
    }
  }
}

TEST_CASE("the one-pass AVX2 transforms and the generic ones give the same bits (float32)") {
  // Every float convolution in an AVX2 build takes the one-pass transforms; the generic xsimd
  // transforms (float64's, and float's without AVX2) run here under GenericTransformsScope.
  // Odd and even sizes, paddings 0-2, rows wider than 16 tiles, several blocks.
  Generator g(23);
  struct Case { Shape x; int64_t pad; };
  for (const Case& c : {Case{{3, 8, 13, 27}, 0}, Case{{8, 16, 20, 18}, 1}, Case{{2, 8, 9, 37}, 2},
                        Case{{32, 8, 14, 14}, 1}}) {
    CAPTURE(to_string(c.x));
    CAPTURE(c.pad);
    Tensor x = randn(c.x, DType::f32, g), w = randn({16, c.x[1], 3, 3}, DType::f32, g), b = randn({16}, DType::f32, g);
    auto one_pass = conv_and_grads(ConvAlgorithm::winograd, x, w, b, c.pad);
    std::vector<Tensor> generic;
    {
      nn::detail::GenericTransformsScope scope;
      CHECK_FALSE(nn::detail::one_pass_transforms());
      generic = conv_and_grads(ConvAlgorithm::winograd, x, w, b, c.pad);
    }
    for (size_t k = 0; k < 4; ++k) {
      CAPTURE(k);
      CHECK(one_pass[k].to_vector() == generic[k].to_vector());
    }
  }
#ifdef __AVX2__
  CHECK(nn::detail::one_pass_transforms());
#else
  MESSAGE("skipped: the one-pass transforms, which this build (no AVX2) does not have");
  CHECK_FALSE(nn::detail::one_pass_transforms());
#endif
}

TEST_CASE("the conv algorithm rule: winograd for 3x3, stride 1, dilation 1, padding 0-2 and enough channels") {
  const nn::ConvWindow same{3, 3, 1, 1, 1, 1, 1, 1};
  CHECK(nn::winograd_applies(same));
  CHECK(nn::winograd_applies({3, 3, 1, 1, 0, 2, 1, 1}));
  CHECK_FALSE(nn::winograd_applies({3, 3, 1, 1, 3, 1, 1, 1}));  // padding 3
  CHECK_FALSE(nn::winograd_applies({3, 3, 2, 1, 1, 1, 1, 1}));  // stride 2
  CHECK_FALSE(nn::winograd_applies({3, 3, 1, 1, 1, 1, 1, 2}));  // dilation 2
  CHECK_FALSE(nn::winograd_applies({5, 5, 1, 1, 2, 2, 1, 1}));  // 5×5
  CHECK_FALSE(nn::winograd_applies({3, 2, 1, 1, 1, 1, 1, 1}));  // 3×2

  {
    ConvAlgorithmGuard guard(ConvAlgorithm::automatic);
    CHECK(nn::conv_choice(32, 64, same) == ConvAlgorithm::winograd);  // the small CNN's conv2
    CHECK(nn::conv_choice(64, 32, same) == ConvAlgorithm::winograd);
    CHECK(nn::conv_choice(1, 32, same) == ConvAlgorithm::im2col);  // its conv1
    CHECK(nn::conv_choice(nn::kWinogradMinChannels, nn::kWinogradMinChannels, same) == ConvAlgorithm::winograd);
    CHECK(nn::conv_choice(nn::kWinogradMinChannels - 1, 64, same) == ConvAlgorithm::im2col);
    CHECK(nn::conv_choice(32, 64, {3, 3, 2, 2, 1, 1, 1, 1}) == ConvAlgorithm::im2col);
    CHECK(nn::conv_choice(8, 8, {3, 3, 1, 1, 2, 2, 1, 1}) == ConvAlgorithm::winograd);  // nn.conv2d_winograd's
  }
  {
    ConvAlgorithmGuard guard(ConvAlgorithm::winograd);
    CHECK(nn::conv_choice(1, 1, same) == ConvAlgorithm::winograd);
    CHECK(nn::conv_choice(32, 64, {3, 3, 2, 2, 1, 1, 1, 1}) == ConvAlgorithm::im2col);  // does not apply
  }
  {
    ConvAlgorithmGuard guard(ConvAlgorithm::im2col);
    CHECK(nn::conv_choice(32, 64, same) == ConvAlgorithm::im2col);
  }
}

TEST_CASE("conv algorithm names parse, print and reject unknown values") {
  for (ConvAlgorithm a : {ConvAlgorithm::automatic, ConvAlgorithm::im2col, ConvAlgorithm::winograd})
    CHECK(nn::parse_conv_algorithm(nn::conv_algorithm_name(a)) == a);
  CHECK_THROWS_WITH_AS(nn::parse_conv_algorithm("fft"), doctest::Contains("auto, im2col, winograd"),
                       std::invalid_argument);
  CHECK_THROWS_AS(nn::set_conv_algorithm(static_cast<ConvAlgorithm>(7)), std::invalid_argument);
  {
    ConvAlgorithmGuard guard(ConvAlgorithm::im2col);
    CHECK(nn::conv_algorithm() == ConvAlgorithm::im2col);
  }
}
