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

std::shared_ptr<ImageDataset> load_mnist(const std::string& dir, Split split) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw DatasetError("MNIST directory '" + dir + "' does not exist");
  const std::string images_path = mnist_file(dir, split, false);
  const std::string labels_path = mnist_file(dir, split, true);
  IdxArray images = read_idx(images_path);
  if (images.type != IdxType::u8 || images.dims.size() != 3) {
    throw DatasetError("IDX file '" + images_path + "': expected ubyte images of rank 3 [N, rows, cols], got " +
                       idx_type_name(images.type) + " of rank " + std::to_string(images.dims.size()));
  }
  IdxArray labels = read_idx(labels_path);
  if (labels.type != IdxType::u8 || labels.dims.size() != 1) {
    throw DatasetError("IDX file '" + labels_path + "': expected ubyte labels of rank 1 [N], got " +
                       idx_type_name(labels.type) + " of rank " + std::to_string(labels.dims.size()));
  }
  if (labels.dims[0] != images.dims[0]) {
    throw DatasetError("MNIST directory '" + dir + "': " + std::to_string(images.dims[0]) + " images in '" +
                       images_path + "' but " + std::to_string(labels.dims[0]) + " labels in '" + labels_path + "'");
  }
  for (size_t i = 0; i < labels.bytes.size(); ++i) {
    if (labels.bytes[i] > 9)
      throw DatasetError("IDX file '" + labels_path + "': label " + std::to_string(labels.bytes[i]) + " at index " +
                         std::to_string(i) + " is not a class 0..9");
  }
  // samples [1, rows, cols], scaled to [0, 1] batch by batch
  return std::make_shared<ImageDataset>(images.bytes, Shape{1, images.dims[1], images.dims[2]},
                                        idx_to_tensor(labels, DType::i64), 1.0f / 255.0f);
}

}  // namespace tapegrad::datasets
