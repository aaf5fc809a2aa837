// TensorDataset, Subset, random_split and DataLoader: batching, views, seeded shuffling, drop_last.
#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <set>

#include "autograd/autograd.hpp"
#include "datasets/datasets.hpp"

using namespace tapegrad;
using namespace tapegrad::datasets;

namespace {
// x[i] = {i, 100 + i}, y[i] = i: every row tells which sample it is.
std::shared_ptr<TensorDataset> numbered(int64_t n) {
  std::vector<double> xs;
  std::vector<int64_t> ys;
  for (int64_t i = 0; i < n; ++i) {
    xs.push_back(static_cast<double>(i));
    xs.push_back(100.0 + static_cast<double>(i));
    ys.push_back(i);
  }
  return std::make_shared<TensorDataset>(tensor(xs, {n, 2}), index_tensor(ys));
}
std::vector<int64_t> labels_of(const Batch& b) {
  std::vector<int64_t> out;
  for (double v : b.y.to_vector()) out.push_back(static_cast<int64_t>(v));
  return out;
}
// Sample order of one pass over the loader.
std::vector<int64_t> pass(DataLoader& loader) {
  std::vector<int64_t> order;
  for (const Batch& b : loader) {
    auto l = labels_of(b);
    order.insert(order.end(), l.begin(), l.end());
    // x and y stay aligned under shuffling
    for (int64_t r = 0; r < b.size(); ++r) CHECK(b.x.at({r, 0}) == static_cast<double>(l[static_cast<size_t>(r)]));
  }
  return order;
}
}  // namespace

TEST_CASE("TensorDataset checks its tensors and slices rows as views") {
  CHECK_THROWS_AS(TensorDataset(zeros({3, 2}), zeros({4})), std::invalid_argument);
  auto ds = numbered(10);
  Batch b = ds->range(2, 5);
  CHECK(b.x.shape() == Shape{3, 2});
  CHECK(labels_of(b) == std::vector<int64_t>{2, 3, 4});
  // a view: same storage as the dataset, no copy
  CHECK(b.x.impl()->storage.data() == ds->x().impl()->storage.data());
  CHECK_THROWS_AS(ds->range(5, 11), std::out_of_range);
  CHECK_THROWS_AS(ds->get({0, 10}), std::out_of_range);
  CHECK(labels_of(ds->get({7, 1})) == std::vector<int64_t>{7, 1});
}

TEST_CASE("DataLoader in order: views, last partial batch, drop_last") {
  auto ds = numbered(10);
  DataLoader loader(ds, {.batch_size = 4});
  CHECK(loader.num_batches() == 3);
  CHECK(loader.num_samples() == 10);
  std::vector<int64_t> sizes;
  for (const Batch& b : loader) sizes.push_back(b.size());
  CHECK(sizes == std::vector<int64_t>{4, 4, 2});
  CHECK(pass(loader) == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});

  DataLoader dropping(ds, {.batch_size = 4, .drop_last = true});
  CHECK(dropping.num_batches() == 2);
  CHECK(dropping.num_samples() == 8);
  CHECK(pass(dropping) == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK_THROWS_AS(DataLoader(ds, {.batch_size = 0}), std::invalid_argument);
  CHECK_THROWS_AS(DataLoader(nullptr, {}), std::invalid_argument);
}

TEST_CASE("DataLoader shuffling is a seeded permutation, new on every pass") {
  auto ds = numbered(50);
  DataLoader a(ds, {.batch_size = 8, .shuffle = true, .seed = 42});
  DataLoader b(ds, {.batch_size = 8, .shuffle = true, .seed = 42});
  DataLoader c(ds, {.batch_size = 8, .shuffle = true, .seed = 43});
  auto a1 = pass(a), a2 = pass(a), b1 = pass(b), b2 = pass(b), c1 = pass(c);
  CHECK(a1 == b1);  // same seed, same order
  CHECK(a2 == b2);
  CHECK(a1 != a2);  // each epoch reshuffles
  CHECK(a1 != c1);  // another seed, another order
  std::vector<int64_t> sorted = a1;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> all(50);
  for (int64_t i = 0; i < 50; ++i) all[static_cast<size_t>(i)] = i;
  CHECK(sorted == all);  // every sample exactly once
  std::vector<int64_t> in_order(all.begin(), all.end());
  CHECK(a1 != in_order);

  // shuffled + drop_last: 6 batches of 8, 48 distinct samples
  DataLoader d(ds, {.batch_size = 8, .shuffle = true, .drop_last = true, .seed = 1});
  auto d1 = pass(d);
  CHECK(d1.size() == 48);
  CHECK(std::set<int64_t>(d1.begin(), d1.end()).size() == 48);
}

TEST_CASE("random_split is a seeded partition and Subset maps indices") {
  auto ds = numbered(20);
  auto [train, val] = random_split(ds, 0.25, 7);
  CHECK(train->size() == 15);
  CHECK(val->size() == 5);
  std::set<int64_t> seen(train->indices().begin(), train->indices().end());
  seen.insert(val->indices().begin(), val->indices().end());
  CHECK(seen.size() == 20);
  auto [train2, val2] = random_split(ds, 0.25, 7);
  CHECK(val2->indices() == val->indices());
  auto [train3, val3] = random_split(ds, 0.25, 8);
  CHECK(val3->indices() != val->indices());
  // Subset rows are the base rows at the mapped indices
  Batch b = val->range(0, val->size());
  std::vector<int64_t> expected(val->indices().begin(), val->indices().end());
  CHECK(labels_of(b) == expected);
  DataLoader loader(val, {.batch_size = 2});
  CHECK(pass(loader) == expected);
  CHECK_THROWS_AS(random_split(ds, 1.0, 0), std::invalid_argument);
  CHECK(random_split(ds, 0.0, 0).second->size() == 0);
}

TEST_CASE("a batch size near INT64_MAX gives one batch of everything, without overflow") {
  const int64_t huge = std::numeric_limits<int64_t>::max();
  for (bool shuffle : {false, true}) {
    DataLoader loader(numbered(5), {.batch_size = huge, .shuffle = shuffle});
    CHECK(loader.num_batches() == 1);
    CHECK(loader.num_samples() == 5);
    loader.reset();
    CHECK(loader.batch(0).x.size(0) == 5);
    DataLoader dropping(numbered(5), {.batch_size = huge, .drop_last = true});
    CHECK(dropping.num_batches() == 0);
    CHECK(dropping.num_samples() == 0);
  }
}
