#pragma once
// Test fixture: small MNIST-format directories made on the fly (no network, no real data).
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>

#include "datasets/idx.hpp"

namespace tapegrad::testing {

/// A fresh, empty directory under the system temp dir, removed by the destructor.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("tapegrad_" + tag + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

/// A ubyte IDX array of the given dims with values from `f(i)`.
template <class F>
datasets::IdxArray make_u8(std::vector<int64_t> dims, F f) {
  datasets::IdxArray a;
  a.type = datasets::IdxType::u8;
  a.dims = std::move(dims);
  a.bytes.resize(static_cast<size_t>(a.numel()));
  for (size_t i = 0; i < a.bytes.size(); ++i) a.bytes[i] = static_cast<uint8_t>(f(static_cast<int64_t>(i)));
  return a;
}

/// Writes an easy, learnable 10-class MNIST-format set into `dir`: class k is a bright bar on rows
/// 2k+2..2k+4 of a 28×28 image plus noise. Labels cycle 0..9 (shuffled by a fixed seed).
inline void write_toy_mnist(const std::string& dir, int64_t n_train, int64_t n_test, bool gzip = false) {
  std::mt19937 rng(1234);
  auto write_split = [&](const std::string& prefix, int64_t n) {
    std::vector<int64_t> labels(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = (i * 7 + rng() % 3) % 10;
    auto images = make_u8({n, 28, 28}, [&](int64_t i) {
      int64_t sample = i / 784, row = (i % 784) / 28;
      int64_t k = labels[static_cast<size_t>(sample)];
      bool bar = row >= 2 * k + 2 && row < 2 * k + 5;
      return bar ? 200 + rng() % 56 : rng() % 40;
    });
    auto lab = make_u8({n}, [&](int64_t i) { return labels[static_cast<size_t>(i)]; });
    const std::string gz = gzip ? ".gz" : "";
    datasets::write_idx(dir + "/" + prefix + "-images-idx3-ubyte" + gz, images, gzip);
    datasets::write_idx(dir + "/" + prefix + "-labels-idx1-ubyte" + gz, lab, gzip);
  };
  write_split("train", n_train);
  write_split("t10k", n_test);
}

}  // namespace tapegrad::testing
