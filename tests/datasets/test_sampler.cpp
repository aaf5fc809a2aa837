// DistributedSampler: disjoint shards that cover the data, one shuffle for all ranks, reshuffled
// per epoch, padding and drop_last; and a DataLoader reading a rank's shard.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <set>

#include "autograd/autograd.hpp"
#include "datasets/dataset.hpp"
#include "datasets/sampler.hpp"

using namespace tapegrad;
using datasets::DistributedSampler;

namespace {
std::vector<std::vector<int64_t>> shards(int64_t n, int world, uint64_t seed, int64_t epoch, bool shuffle = true,
                                         bool drop_last = false) {
  std::vector<std::vector<int64_t>> out;
  for (int r = 0; r < world; ++r) {
    DistributedSampler s(n, r, world, seed, shuffle, drop_last);
    s.set_epoch(epoch);
    out.push_back(s.indices());
  }
  return out;
}
}  // namespace

TEST_CASE("DistributedSampler: disjoint shards covering every sample once when world divides n") {
  auto parts = shards(12, 3, 5, 0);
  std::vector<int64_t> all;
  for (auto& p : parts) {
    CHECK(p.size() == 4);
    all.insert(all.end(), p.begin(), p.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(12);
  for (int64_t i = 0; i < 12; ++i) expected[static_cast<size_t>(i)] = i;
  CHECK(all == expected);
}

TEST_CASE("DistributedSampler: the same permutation on every rank, a new one per epoch") {
  // Interleaving the shards (rank 0's first, rank 1's first, ...) rebuilds the epoch's permutation.
  auto rebuild = [](const std::vector<std::vector<int64_t>>& parts) {
    std::vector<int64_t> perm;
    for (size_t i = 0; i < parts[0].size(); ++i)
      for (auto& p : parts) perm.push_back(p[i]);
    return perm;
  };
  Generator gen(9 + 2);  // seed + epoch
  CHECK(rebuild(shards(10, 2, 9, 2)) == datasets::randperm(10, gen));
  CHECK(shards(10, 2, 9, 0) != shards(10, 2, 9, 1));
  CHECK(shards(10, 2, 9, 1) == shards(10, 2, 9, 1));  // deterministic
  CHECK(shards(6, 2, 0, 3, /*shuffle=*/false) == std::vector<std::vector<int64_t>>{{0, 2, 4}, {1, 3, 5}});
}

TEST_CASE("DistributedSampler: padding repeats the first indices, drop_last cuts") {
  // 10 samples over 4 ranks: 3 each, 2 padded from the start of the (unshuffled) order
  CHECK(shards(10, 4, 0, 0, false) == std::vector<std::vector<int64_t>>{{0, 4, 8}, {1, 5, 9}, {2, 6, 0}, {3, 7, 1}});
  CHECK(DistributedSampler(10, 0, 4).num_samples() == 3);
  CHECK(shards(10, 4, 0, 0, false, /*drop_last=*/true) == std::vector<std::vector<int64_t>>{{0, 4}, {1, 5}, {2, 6}, {3, 7}});
  CHECK(DistributedSampler(10, 0, 4, 0, true, true).num_samples() == 2);
  // fewer samples than ranks: repeated as often as needed
  CHECK(shards(2, 5, 0, 0, false) == std::vector<std::vector<int64_t>>{{0}, {1}, {0}, {1}, {0}});
  CHECK(DistributedSampler(0, 0, 2).indices().empty());
}

TEST_CASE("DistributedSampler: rejects a bad rank, world size, n or epoch") {
  CHECK_THROWS_WITH_AS(DistributedSampler(4, 2, 2), doctest::Contains("rank 2 outside [0, 2)"), std::invalid_argument);
  CHECK_THROWS_AS(DistributedSampler(4, 0, 0), std::invalid_argument);
  CHECK_THROWS_AS(DistributedSampler(-1, 0, 1), std::invalid_argument);
  DistributedSampler s(4, 0, 1);
  CHECK_THROWS_AS(s.set_epoch(-1), std::invalid_argument);
}

TEST_CASE("DataLoader with a DistributedSampler reads the rank's shard in the sampler's order") {
  auto data = std::make_shared<datasets::TensorDataset>(arange(0, 10, 1, DType::f32).reshape({10, 1}),
                                                        arange(0, 10, 1, DType::i64));
  auto sampler = std::make_shared<DistributedSampler>(10, 1, 2, /*seed=*/3);
  datasets::DataLoader loader(data, {.batch_size = 2, .sampler = sampler});
  CHECK(loader.num_batches() == 3);
  CHECK(loader.num_samples() == 5);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    sampler->set_epoch(epoch);
    std::vector<int64_t> seen;
    for (const datasets::Batch& b : loader)
      for (double v : b.y.to_vector()) seen.push_back(static_cast<int64_t>(v));
    CHECK(seen == sampler->indices());
  }
  CHECK_THROWS_WITH_AS(datasets::DataLoader(data, {.batch_size = 2, .shuffle = true, .sampler = sampler}),
                       doctest::Contains("shuffle and sampler"), std::invalid_argument);
  auto wrong = std::make_shared<DistributedSampler>(9, 0, 2);
  CHECK_THROWS_WITH_AS(datasets::DataLoader(data, {.sampler = wrong}), doctest::Contains("sampler is for 9 samples"),
                       std::invalid_argument);
}
