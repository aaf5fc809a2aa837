#pragma once
/// \file images.hpp
/// ImageDataset: images kept as their file's bytes (uint8), turned into float32 one batch at a time.
///
///     auto train = load_mnist(dir, Split::train);          // an ImageDataset: 47 MB of bytes, not 188 MB
///     DataLoader loader(train, {.batch_size = 32, .shuffle = true});
///     for (const Batch& b : loader) { ... b.x: float32 [32,1,28,28] = byte · scale, b.y: int64 [32] ... }
///
/// This is what torchvision's MNIST does (uint8 storage, conversion per sample), done per batch. A
/// shuffled batch gathers rows scattered over the whole dataset, and that gather is bound by memory
/// latency, not bandwidth: bytes are a quarter of the cache lines of float32 rows, the rows a few
/// indices ahead are prefetched while the current one converts, and the pixel buffer asks the kernel
/// for transparent huge pages (fewer TLB misses, which a virtual machine pays twice). Measured on the
/// seed MLP's Fashion-MNIST epoch (bench_train, BM_SeedMlpPhaseBatch against
/// BM_SeedMlpPhaseBatchFloat32): a shuffled batch takes about 0.4× the time of the float32
/// TensorDataset's `index_select` (7 against 17 µs at batch 32, 52 against 127 µs at batch 256).
///
/// Values are bit-identical to `idx_to_tensor(images, DType::f32, scale)`: float(byte) · float(scale).
/// `range` converts too (it cannot be a view of bytes); `images()` converts the whole set at once.
#include <cstdint>
#include <memory>
#include <vector>

#include "autograd/shape.hpp"
#include "datasets/dataset.hpp"

namespace tapegrad::datasets {

/// Images held as bytes in memory (one copy, 4x smaller than float32), converted to float32 batches
/// on demand: what the MNIST and Fashion-MNIST loaders return.
class ImageDataset final : public Dataset {
 public:
  /// `pixels` holds N samples of `sample_shape` (e.g. {1, 28, 28}), sample after sample; `labels`
  /// is any tensor whose first dimension is N (int64 [N] for classification). N may be 0 (an empty
  /// dataset: no batches; fit refuses it). Each batch holds float(byte) / divisor, the exact
  /// division (PyTorch's and torchvision's x / 255, bit for bit). Throws std::invalid_argument when
  /// the sizes disagree or the divisor is not finite and non-zero. The pixels are copied once.
  ImageDataset(const std::vector<uint8_t>& pixels, Shape sample_shape, Tensor labels, float divisor = 255.0f);
  /// The same over `pixel_bytes` bytes at `pixels`, taken without a copy: a loader reads a file
  /// straight into allocate_pixels(n) and hands the buffer over.
  ImageDataset(std::shared_ptr<uint8_t> pixels, int64_t pixel_bytes, Shape sample_shape, Tensor labels,
               float divisor = 255.0f);

  /// Uninitialised memory for `n` bytes of pixels that asks the kernel for transparent huge pages
  /// when it spans at least one (the gather of shuffled batches is TLB-bound). Throws
  /// std::bad_alloc.
  static std::shared_ptr<uint8_t> allocate_pixels(size_t n);

  int64_t size() const override { return size_; }
  /// float32 [indices.size(), sample_shape...] and the labels' rows; throws std::out_of_range
  /// (naming the index) before converting anything.
  Batch get(const std::vector<int64_t>& indices) const override;
  /// Samples [begin, end), converted (not a view).
  Batch range(int64_t begin, int64_t end) const override;

  /// Every image as one float32 tensor [N, sample_shape...] (a new conversion on each call).
  Tensor images() const;
  const Tensor& labels() const { return labels_; }             ///< all labels, first dimension N
  const Shape& sample_shape() const { return sample_shape_; }  ///< one image's shape, e.g. {1, 28, 28}
  float divisor() const { return divisor_; }                   ///< pixels are float(byte) / divisor
  /// Bytes per sample (the product of sample_shape).
  int64_t sample_bytes() const { return sample_bytes_; }

 private:
  void check_sizes(int64_t pixel_bytes);  // sets size_ and sample_bytes_; throws on a mismatch
  std::shared_ptr<uint8_t> pixels_;  // size_ · sample_bytes_ bytes, huge-page advised when large
  Shape sample_shape_;
  Tensor labels_;
  float divisor_;
  int64_t size_ = 0, sample_bytes_ = 0;
};

}  // namespace tapegrad::datasets
