#include "datasets/mnist.hpp"

#include <filesystem>

namespace tapegrad::datasets {

std::string mnist_file(const std::string& dir, Split split, bool labels) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  const std::string kind = labels ? "labels" : "images";
  const std::string idx = labels ? "idx1-ubyte" : "idx3-ubyte";
  const std::string names[] = {prefix + "-" + kind + "-" + idx, prefix + "-" + kind + "." + idx};
  std::string tried;
  for (const auto& name : names) {
    for (const char* suffix : {"", ".gz"}) {
      auto path = std::filesystem::path(dir) / (name + suffix);
      if (std::filesystem::is_regular_file(path)) return path.string();
      tried += (tried.empty() ? "" : ", ") + name + suffix;
    }
  }
  throw DatasetError("MNIST directory '" + dir + "': no " + kind + " file for the " + prefix + " split (tried " +
                     tried + ")");
}

std::shared_ptr<ImageDataset> load_mnist(const std::string& dir, Split split, uint64_t max_bytes) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw DatasetError("MNIST directory '" + dir + "' does not exist");
  const std::string images_path = mnist_file(dir, split, false);
  const std::string labels_path = mnist_file(dir, split, true);
  // Both headers are checked, and the size limit, before any payload is read or allocated.
  IdxReader images(images_path);
  if (images.type() != IdxType::u8 || images.dims().size() != 3) {
    throw DatasetError("IDX file '" + images_path + "': expected ubyte images of rank 3 [N, rows, cols], got " +
                       idx_type_name(images.type()) + " of rank " + std::to_string(images.dims().size()));
  }
  const int64_t n = images.dims()[0];
  if (n == 0 || images.payload_bytes() == 0)
    throw DatasetError("IDX file '" + images_path + "': holds no images (dimensions [" + std::to_string(n) + ", " +
                       std::to_string(images.dims()[1]) + ", " + std::to_string(images.dims()[2]) + "])");
  if (images.payload_bytes() > max_bytes)
    throw DatasetError("IDX file '" + images_path + "': " + std::to_string(n) + " images are " +
                       std::to_string(images.payload_bytes()) + " bytes, over the limit of " + std::to_string(max_bytes) +
                       " bytes (load_mnist's max_bytes)");
  IdxReader labels(labels_path);
  if (labels.type() != IdxType::u8 || labels.dims().size() != 1) {
    throw DatasetError("IDX file '" + labels_path + "': expected ubyte labels of rank 1 [N], got " +
                       idx_type_name(labels.type()) + " of rank " + std::to_string(labels.dims().size()));
  }
  if (labels.dims()[0] != n) {
    throw DatasetError("MNIST directory '" + dir + "': " + std::to_string(n) + " images in '" + images_path + "' but " +
                       std::to_string(labels.dims()[0]) + " labels in '" + labels_path + "'");
  }
  const IdxArray label_array{labels.type(), labels.dims(), labels.read_all()};
  for (size_t i = 0; i < label_array.bytes.size(); ++i) {
    if (label_array.bytes[i] > 9)
      throw DatasetError("IDX file '" + labels_path + "': label " + std::to_string(label_array.bytes[i]) + " at index " +
                         std::to_string(i) + " is not a class 0..9");
  }
  // The images are decompressed straight into the dataset's buffer: one copy of the pixels.
  auto pixels = ImageDataset::allocate_pixels(images.payload_bytes());
  images.read_into(pixels.get());
  // samples [1, rows, cols], scaled to [0, 1] batch by batch
  return std::make_shared<ImageDataset>(std::move(pixels), static_cast<int64_t>(images.payload_bytes()),
                                        Shape{1, images.dims()[1], images.dims()[2]},
                                        idx_to_tensor(label_array, DType::i64), 255.0f);
}

}  // namespace tapegrad::datasets
