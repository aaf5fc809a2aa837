#include "datasets/sampler.hpp"

#include <numeric>
#include <stdexcept>
#include <string>

#include "autograd/random.hpp"
#include "datasets/dataset.hpp"

namespace tapegrad::datasets {

DistributedSampler::DistributedSampler(int64_t n, int rank, int world_size, uint64_t seed, bool shuffle,
                                       bool drop_last)
    : n_(n), rank_(rank), world_size_(world_size), seed_(seed), shuffle_(shuffle), drop_last_(drop_last) {
  if (n < 0) throw std::invalid_argument("DistributedSampler: n must be >= 0, got " + std::to_string(n));
  if (world_size < 1)
    throw std::invalid_argument("DistributedSampler: world_size must be >= 1, got " + std::to_string(world_size));
  if (rank < 0 || rank >= world_size)
    throw std::invalid_argument("DistributedSampler: rank " + std::to_string(rank) + " outside [0, " +
                                std::to_string(world_size) + ")");
}

void DistributedSampler::set_epoch(int64_t epoch) {
  if (epoch < 0) throw std::invalid_argument("DistributedSampler::set_epoch: epoch must be >= 0, got " + std::to_string(epoch));
  epoch_ = epoch;
}

int64_t DistributedSampler::num_samples() const {
  return drop_last_ ? n_ / world_size_ : (n_ + world_size_ - 1) / world_size_;
}

std::vector<int64_t> DistributedSampler::indices() const {
  std::vector<int64_t> all;
  if (shuffle_) {
    Generator gen(seed_ + static_cast<uint64_t>(epoch_));
    all = randperm(n_, gen);
  } else {
    all.resize(static_cast<size_t>(n_));
    std::iota(all.begin(), all.end(), int64_t{0});
  }
  const int64_t per_rank = num_samples(), total = per_rank * world_size_;
  // Pad by repeating from the start (possibly several times over for n < world_size), or cut.
  for (int64_t i = n_; i < total; ++i) all.push_back(all[static_cast<size_t>(i % n_)]);
  all.resize(static_cast<size_t>(total));
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(per_rank));
  for (int64_t i = rank_; i < total; i += world_size_) mine.push_back(all[static_cast<size_t>(i)]);
  return mine;
}

}  // namespace tapegrad::datasets
