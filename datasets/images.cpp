#include "datasets/images.hpp"

#include <sys/mman.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "autograd/functions.hpp"
#include "autograd/node.hpp"
#include "autograd/parallel.hpp"

namespace tapegrad::datasets {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

std::shared_ptr<uint8_t> ImageDataset::allocate_pixels(size_t n) {
  uint8_t* p = nullptr;
  if (n >= kHugePage) {
    const size_t rounded = (n + kHugePage - 1) / kHugePage * kHugePage;
    p = static_cast<uint8_t*>(std::aligned_alloc(kHugePage, rounded));
#ifdef MADV_HUGEPAGE
    if (p) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: without THP the pages are small
#endif
  } else {
    p = static_cast<uint8_t*>(std::malloc(n ? n : 1));
  }
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<uint8_t>(p, [](uint8_t* q) { std::free(q); });
}

namespace {

/// out[r, :] = float(rows[r][:]) / divisor for `count` rows, rows[r] = base + row(r) · width bytes.
/// Rows a few ahead are prefetched: a shuffled gather is bound by the latency of scattered rows.
/// Rows in parallel for a large batch (each thread converts its own rows).
template <class RowOf>
void convert_rows(const uint8_t* base, int64_t width, int64_t count, RowOf row, float divisor, float* out) {
  constexpr int64_t kAhead = 4;
  parallel::parallel_for(0, count, parallel::rows_grain(width), [&](int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    if (r + kAhead < r1) {
      const uint8_t* next = base + row(r + kAhead) * width;
      for (int64_t b = 0; b < width; b += 64) __builtin_prefetch(next + b, 0, 3);
      __builtin_prefetch(next + width - 1, 0, 3);  // the last line of a row that starts mid-line
    }
    const uint8_t* src = base + row(r) * width;
    float* dst = out + r * width;
    for (int64_t k = 0; k < width; ++k) dst[k] = static_cast<float>(src[k]) / divisor;
  }
  });
}

}  // namespace

ImageDataset::ImageDataset(const std::vector<uint8_t>& pixels, Shape sample_shape, Tensor labels, float divisor)
    : sample_shape_(std::move(sample_shape)), labels_(std::move(labels)), divisor_(divisor) {
  check_sizes(static_cast<int64_t>(pixels.size()));  // before allocating
  pixels_ = allocate_pixels(pixels.size());
  if (!pixels.empty()) std::memcpy(pixels_.get(), pixels.data(), pixels.size());
}

ImageDataset::ImageDataset(std::shared_ptr<uint8_t> pixels, int64_t pixel_bytes, Shape sample_shape, Tensor labels,
                           float divisor)
    : pixels_(std::move(pixels)), sample_shape_(std::move(sample_shape)), labels_(std::move(labels)), divisor_(divisor) {
  if (!pixels_) throw std::invalid_argument("ImageDataset: null pixel buffer");
  check_sizes(pixel_bytes);
}

void ImageDataset::check_sizes(int64_t pixel_bytes) {
  if (!labels_.defined() || labels_.dim() == 0)
    throw std::invalid_argument("ImageDataset: labels must be a defined tensor of rank >= 1");
  if (!std::isfinite(divisor_) || divisor_ == 0)
    throw std::invalid_argument("ImageDataset: the divisor must be finite and non-zero, got " + std::to_string(divisor_));
  sample_bytes_ = 1;
  for (int64_t d : sample_shape_) {
    if (d <= 0)
      throw std::invalid_argument("ImageDataset: sample shape " + to_string(sample_shape_) + " has a non-positive dimension");
    sample_bytes_ *= d;
  }
  size_ = labels_.size(0);
  if (pixel_bytes != size_ * sample_bytes_)
    throw std::invalid_argument("ImageDataset: " + std::to_string(pixel_bytes) + " pixel bytes do not hold " +
                                std::to_string(size_) + " samples of shape " + to_string(sample_shape_) + " (" +
                                std::to_string(size_ * sample_bytes_) + " bytes)");
}

namespace {
Shape batch_shape(int64_t n, const Shape& sample) {
  std::vector<int64_t> dims{n};
  dims.insert(dims.end(), sample.begin(), sample.end());
  return Shape(dims);
}
}  // namespace

Batch ImageDataset::get(const std::vector<int64_t>& indices) const {
  for (int64_t i : indices) {
    if (i < 0 || i >= size_)
      throw std::out_of_range("ImageDataset::get: index " + std::to_string(i) + " out of range [0, " +
                              std::to_string(size_) + ")");
  }
  NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(indices.size());
  Tensor x = Tensor::empty(batch_shape(n, sample_shape_), DType::f32);
  convert_rows(pixels_.get(), sample_bytes_, n, [&](int64_t r) { return indices[static_cast<size_t>(r)]; }, divisor_,
               x.mutable_data<float>());
  return {x, index_select(labels_, 0, index_tensor(indices))};
}

Batch ImageDataset::range(int64_t begin, int64_t end) const {
  if (begin < 0 || end > size_ || begin > end)
    throw std::out_of_range("ImageDataset::range: [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") outside [0, " + std::to_string(size_) + ")");
  NoGradGuard no_grad;
  Tensor x = Tensor::empty(batch_shape(end - begin, sample_shape_), DType::f32);
  convert_rows(pixels_.get(), sample_bytes_, end - begin, [&](int64_t r) { return begin + r; }, divisor_, x.mutable_data<float>());
  return {x, slice(labels_, 0, begin, end)};
}

Tensor ImageDataset::images() const { return range(0, size_).x; }

}  // namespace tapegrad::datasets
