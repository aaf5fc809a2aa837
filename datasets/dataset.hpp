#pragma once
/// \file dataset.hpp
/// Datasets and the DataLoader.
///
/// A Dataset yields (x, y) rows by index; TensorDataset holds two tensors whose first dimension is
/// the sample index. A DataLoader cuts a dataset into batches:
///
///     auto train = std::make_shared<TensorDataset>(images, labels);   // [N,1,28,28] f32, [N] i64
///     DataLoader loader(train, {.batch_size = 32, .shuffle = true, .seed = 7});
///     for (const Batch& b : loader) { ... b.x: [32,1,28,28], b.y: [32] ... }
///
/// A batch never costs a copy of the dataset: in order it is a zero-copy view (`slice` on dim 0),
/// shuffled it is one batch-sized gather (`index_select`). Each pass over a shuffling loader draws a
/// new permutation from the loader's own generator, so a run is reproducible from its seed.
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace tapegrad::datasets {

class DistributedSampler;

/// A batch of inputs and targets; x and y have the same first dimension.
struct Batch {
  Tensor x;  ///< inputs, [batch, ...]
  Tensor y;  ///< targets, [batch, ...]
  /// The number of samples.
  int64_t size() const { return x.size(0); }
};

/// A finite, indexable collection of (x, y) samples.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of samples.
  virtual int64_t size() const = 0;
  /// Samples `indices` (each in [0, size())) stacked along dim 0.
  virtual Batch get(const std::vector<int64_t>& indices) const = 0;
  /// Samples [begin, end). The default gathers; TensorDataset returns views.
  virtual Batch range(int64_t begin, int64_t end) const;
};

/// A dataset of two tensors in memory: x [N, ...] (inputs) and y [N, ...] (targets).
class TensorDataset final : public Dataset {
 public:
  /// Throws std::invalid_argument when the first dimensions differ.
  TensorDataset(Tensor x, Tensor y);
  int64_t size() const override { return x_.size(0); }
  Batch get(const std::vector<int64_t>& indices) const override;
  /// A zero-copy view of rows [begin, end).
  Batch range(int64_t begin, int64_t end) const override;
  const Tensor& x() const { return x_; }  ///< all inputs
  const Tensor& y() const { return y_; }  ///< all targets

 private:
  Tensor x_, y_;
};

/// The samples of `base` at `indices`, in that order (no data copied).
class Subset final : public Dataset {
 public:
  /// Throws std::out_of_range when an index is outside base's samples.
  Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Batch get(const std::vector<int64_t>& indices) const override;
  /// The positions in base, in this subset's order.
  const std::vector<int64_t>& indices() const { return indices_; }

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
};

/// A permutation of 0..n-1 (Fisher–Yates driven by `gen`).
std::vector<int64_t> randperm(int64_t n, Generator& gen);

/// Splits `data` at random into (first, second) with round(fraction · size) samples in `second`
/// (e.g. fraction 0.1 = a 10 % validation set). Deterministic for a seed. 0 ≤ fraction < 1.
std::pair<std::shared_ptr<Subset>, std::shared_ptr<Subset>> random_split(std::shared_ptr<const Dataset> data,
                                                                         double fraction, uint64_t seed);

/// DataLoader settings.
struct DataLoaderOptions {
  int64_t batch_size = 32;  ///< > 0
  bool shuffle = false;     ///< a new permutation on every pass
  bool drop_last = false;   ///< drop a final batch smaller than batch_size
  uint64_t seed = 0;        ///< seeds the loader's own generator
  /// When set, each pass reads the sampler's indices() in that order (a data-parallel rank's shard,
  /// datasets/sampler.hpp); the sampler shuffles, so `shuffle` must be false. Call its set_epoch
  /// before each pass for a new order.
  std::shared_ptr<const DistributedSampler> sampler = nullptr;
};

/// Iterates a dataset in batches. `begin()` starts a pass (and draws its permutation).
class DataLoader {
 public:
  /// Throws std::invalid_argument for a null dataset or batch_size ≤ 0.
  DataLoader(std::shared_ptr<const Dataset> data, DataLoaderOptions options = {});

  /// Number of batches in one pass.
  int64_t num_batches() const;
  /// Number of samples one pass yields (size() minus what drop_last drops).
  int64_t num_samples() const;
  const Dataset& dataset() const { return *data_; }            ///< what it loads from
  const DataLoaderOptions& options() const { return options_; }  ///< batch size, shuffling, drop_last
  /// Batch `b` of the current pass (0 ≤ b < num_batches()).
  Batch batch(int64_t b) const;
  /// Starts a new pass: draws a new order when shuffling.
  void reset();
  /// The generator that draws the shuffling orders (its state() goes into training run states).
  Generator& generator() { return gen_; }

  /// An input iterator over the batches of one pass (`for (Batch b : loader)`).
  class Iterator {
   public:
    /// At batch `b` of `loader`'s current pass.
    Iterator(const DataLoader* loader, int64_t b) : loader_(loader), b_(b) {}
    /// The batch, assembled on each call.
    Batch operator*() const { return loader_->batch(b_); }
    /// The next batch.
    Iterator& operator++() { ++b_; return *this; }
    /// Whether the two are at different batches.
    bool operator!=(const Iterator& o) const { return b_ != o.b_; }

   private:
    const DataLoader* loader_;
    int64_t b_;
  };
  /// Starts a new pass (reset()) and returns its first batch.
  Iterator begin() { reset(); return {this, 0}; }
  /// Past the last batch of the pass.
  Iterator end() const { return {this, num_batches()}; }

 private:
  std::shared_ptr<const Dataset> data_;
  DataLoaderOptions options_;
  Generator gen_;
  std::vector<int64_t> order_;  // empty when reading in order
  int64_t pass_size() const;    // the samples a pass reads from: the data set, or the sampler's share
};

}  // namespace tapegrad::datasets
