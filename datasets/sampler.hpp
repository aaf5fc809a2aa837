#pragma once
/// \file sampler.hpp
/// DistributedSampler: which samples each rank of a data-parallel job reads (PyTorch's
/// torch.utils.data.DistributedSampler). Plain integers, no MPI: give it the rank and world size
/// (distributed::rank(), distributed::world_size()).
///
///     datasets::DistributedSampler sampler(train->size(), rank, world, /*seed=*/7);
///     auto s = std::make_shared<datasets::DistributedSampler>(sampler);
///     DataLoader loader(train, {.batch_size = 16, .sampler = s});
///     for (int64_t epoch = 0; epoch < epochs; ++epoch) {
///       s->set_epoch(epoch);             // a new shuffle each epoch, the same on every rank
///       for (const Batch& b : loader) ...
///     }
///
/// Each epoch, every rank computes the same permutation of 0..n-1 (seeded with seed + epoch), or
/// 0..n-1 in order without shuffling, and takes every world_size-th index starting at its rank:
/// the shards are disjoint and together cover the data set. When world_size does not divide n,
/// the list is padded by repeating its first indices so every rank gets ceil(n / world_size)
/// samples (a few samples count twice per epoch), or with drop_last cut to floor(n / world_size)
/// samples per rank (a few samples are skipped). Equal shard sizes keep the ranks in step: each
/// runs the same number of batches, hence the same collectives.
#include <cstdint>
#include <vector>

namespace tapegrad::datasets {

/// The shard of one rank (see the file comment).
class DistributedSampler {
 public:
  /// A sampler over `n` samples for rank `rank` of `world_size`. Throws std::invalid_argument for
  /// n < 0, world_size < 1 or a rank outside [0, world_size).
  DistributedSampler(int64_t n, int rank, int world_size, uint64_t seed = 0, bool shuffle = true,
                     bool drop_last = false);

  /// Selects the epoch whose permutation indices() returns (seed + epoch seeds the shuffle).
  /// Call it before each epoch: without it every epoch sees the same order. epoch ≥ 0.
  void set_epoch(int64_t epoch);
  /// The current epoch (0 until set_epoch).
  int64_t epoch() const { return epoch_; }

  /// This rank's sample indices for the current epoch, num_samples() of them, in reading order.
  std::vector<int64_t> indices() const;
  /// The number of samples per rank and epoch: ceil(n / world_size), or floor with drop_last.
  int64_t num_samples() const;
  /// The size of the data set it samples from.
  int64_t size() const { return n_; }
  /// This sampler's rank.
  int rank() const { return rank_; }
  /// The number of ranks.
  int world_size() const { return world_size_; }

 private:
  int64_t n_;
  int rank_;
  int world_size_;
  uint64_t seed_;
  bool shuffle_;
  bool drop_last_;
  int64_t epoch_ = 0;
};

}  // namespace tapegrad::datasets
