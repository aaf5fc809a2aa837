// ImageDataset: bytes in memory, float32 batches bit-identical to the float32 TensorDataset it replaces.
#include <doctest/doctest.h>

#include <cstring>
#include <numeric>

#include "autograd/autograd.hpp"
#include "datasets/datasets.hpp"

using namespace tapegrad;
using namespace tapegrad::datasets;

namespace {
// n samples of shape {2, 3, w}: byte k of sample i is (7·i + 13·k) mod 256, label i mod 10.
std::vector<uint8_t> pattern(int64_t n, int64_t sample) {
  std::vector<uint8_t> px(static_cast<size_t>(n * sample));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < sample; ++k) px[static_cast<size_t>(i * sample + k)] = static_cast<uint8_t>((7 * i + 13 * k) % 256);
  return px;
}
Tensor labels(int64_t n) {
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[static_cast<size_t>(i)] = i % 10;
  return index_tensor(y);
}
bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.data<float>(), b.data<float>(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}
}  // namespace

TEST_CASE("ImageDataset converts every byte value exactly as torchvision does: float(byte) / 255") {
  IdxArray all;
  all.dims = {256, 1};
  for (int v = 0; v < 256; ++v) all.bytes.push_back(static_cast<uint8_t>(v));
  ImageDataset ds(all.bytes, Shape{1}, labels(256));
  std::vector<double> exact;
  int differ_from_reciprocal = 0;  // float(b) · float(1/255) is 1 ulp off for 126 of the 256 bytes
  for (int v = 0; v < 256; ++v) {
    exact.push_back(static_cast<float>(v) / 255.0f);
    differ_from_reciprocal += static_cast<float>(v) / 255.0f != static_cast<float>(v) * (1.0f / 255.0f);
  }
  CHECK(differ_from_reciprocal > 100);
  CHECK(bit_identical(ds.images(), tensor(exact, Shape{256, 1})));
  CHECK(ds.images().at({255, 0}) == 1.0);
  CHECK(ds.images().at({0, 0}) == 0.0);
  ImageDataset raw(all.bytes, Shape{1}, labels(256), 1.0f);
  CHECK(raw.images().at({200, 0}) == 200.0);
}

TEST_CASE("ImageDataset batches equal the float32 TensorDataset's, shuffled or in order") {
  // 3,000 samples of 2·3·400 bytes: 7.2 MB, so the huge-page buffer path is the one exercised.
  const int64_t n = 3000, w = 400, sample = 2 * 3 * w;
  auto images = std::make_shared<ImageDataset>(pattern(n, sample), Shape{2, 3, w}, labels(n));
  REQUIRE(images->size() == n);
  CHECK(images->sample_bytes() == sample);
  CHECK(images->sample_shape() == Shape{2, 3, w});
  auto floats = std::make_shared<TensorDataset>(images->images(), images->labels());
  CHECK(floats->x().shape() == Shape{n, 2, 3, w});
  CHECK(floats->x().at({5, 1, 2, 7}) == doctest::Approx(static_cast<double>((7 * 5 + 13 * (3 * w + 2 * w + 7)) % 256) / 255.0));

  for (bool shuffle : {false, true}) {
    CAPTURE(shuffle);
    DataLoader a(images, {.batch_size = 64, .shuffle = shuffle, .seed = 11});
    DataLoader b(floats, {.batch_size = 64, .shuffle = shuffle, .seed = 11});
    REQUIRE(a.num_batches() == b.num_batches());
    auto ia = a.begin();
    auto ib = b.begin();
    for (int64_t k = 0; k < a.num_batches(); ++k, ++ia, ++ib) {
      Batch x = *ia, y = *ib;
      CHECK(bit_identical(x.x, y.x));
      CHECK(x.y.to_vector() == y.y.to_vector());
      CHECK(!x.x.requires_grad());
    }
  }
  // one gather of unsorted, repeated indices, including the last sample
  Batch g = images->get({n - 1, 0, 17, 17, 2999, 4});
  CHECK(g.x.shape() == Shape{6, 2, 3, w});
  CHECK(bit_identical(g.x, index_select(floats->x(), 0, index_tensor({n - 1, 0, 17, 17, 2999, 4}))));
  CHECK(g.y.to_vector() == std::vector<double>{9, 0, 7, 7, 9, 4});
  CHECK(images->range(10, 10).x.shape() == Shape{0, 2, 3, w});
}

TEST_CASE("ImageDataset rejects inconsistent input and bad indices before converting") {
  auto px = pattern(4, 6);
  CHECK_THROWS_WITH_AS(ImageDataset(px, Shape{2, 3}, labels(5)),
                       "ImageDataset: 24 pixel bytes do not hold 5 samples of shape [2, 3] (30 bytes)", std::invalid_argument);
  CHECK_THROWS_AS(ImageDataset(px, Shape{0, 6}, labels(4)), std::invalid_argument);
  CHECK_THROWS_AS(ImageDataset(px, Shape{6}, Tensor()), std::invalid_argument);
  CHECK_THROWS_AS(ImageDataset(px, Shape{6}, labels(4), std::numeric_limits<float>::infinity()), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ImageDataset(px, Shape{6}, labels(4), 0.0f), doctest::Contains("divisor"), std::invalid_argument);
  ImageDataset ds(px, Shape{6}, labels(4));
  CHECK_THROWS_WITH_AS(ds.get({0, 4}), "ImageDataset::get: index 4 out of range [0, 4)", std::out_of_range);
  CHECK_THROWS_AS(ds.get({-1}), std::out_of_range);
  CHECK_THROWS_WITH_AS(ds.range(2, 5), "ImageDataset::range: [2, 5) outside [0, 4)", std::out_of_range);
  CHECK_THROWS_AS(ds.range(3, 2), std::out_of_range);
}
