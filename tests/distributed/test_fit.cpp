// train::fit and train::evaluate in an MPI world: N ranks × batch 32/N give the weights of one
// process × batch 32 on the same samples (each rank computes that reference itself, without
// collectives), evaluate over the ranks equals evaluate on one rank, and a model that is not a
// DistributedDataParallel is refused. One process (the discovered tests) checks the world of one.
#include <doctest/doctest.h>

#include <memory>
#include <sstream>

#include "autograd/autograd.hpp"
#include "datasets/dataset.hpp"
#include "datasets/sampler.hpp"
#include "distributed/comm.hpp"
#include "distributed/ddp.hpp"
#include "distributed/weights.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"
#include "optim/sgd.hpp"
#include "train/fit.hpp"

using namespace tapegrad;
namespace dist = tapegrad::distributed;
using testing::max_abs_diff;

namespace {

constexpr int64_t kSamples = 96, kGlobalBatch = 32, kEpochs = 2;
constexpr uint64_t kSeed = 5;

// 4 → 8 → 3, the same weights on every rank (a seeded Generator), float64.
std::shared_ptr<nn::Sequential> make_model() {
  Generator gen(11);
  auto m = std::make_shared<nn::Sequential>(nn::Linear(4, 8, gen), nn::Tanh(), nn::Linear(8, 3, gen));
  m->to(DType::f64);
  return m;
}

// Regression data [96, 4] → [96, 3], or classification targets in {0, 1, 2}.
std::shared_ptr<datasets::TensorDataset> make_data(bool classes) {
  Generator gen(3);
  std::vector<double> xs, ys;
  for (int64_t i = 0; i < kSamples * 4; ++i) xs.push_back(gen.normal());
  if (classes)
    for (int64_t i = 0; i < kSamples; ++i) ys.push_back(static_cast<double>(i % 3));
  else
    for (int64_t i = 0; i < kSamples * 3; ++i) ys.push_back(gen.normal());
  Tensor x = tensor(xs, {kSamples, 4}, DType::f64);
  Tensor y = classes ? tensor(ys, {kSamples}, DType::i64) : tensor(ys, {kSamples, 3}, DType::f64);
  return std::make_shared<datasets::TensorDataset>(x, y);
}

Tensor mse(const Tensor& out, const Tensor& y) { return nn::functional::mse_loss(out, y); }

// One process, batch 32, the samples in the order DistributedSampler draws for a world of one:
// the union of what N ranks read at the same step (rank r takes every N-th sample of the epoch's
// permutation, so the ranks' batches b together are the permutation's rows [32b, 32b + 32)).
std::vector<Tensor> reference_weights(const datasets::TensorDataset& data) {
  auto model = make_model();
  optim::SGD opt(model->parameters(), optim::SGDOptions(0.1).momentum(0.9));
  datasets::DistributedSampler order(data.size(), 0, 1, kSeed);
  for (int64_t epoch = 0; epoch < kEpochs; ++epoch) {
    order.set_epoch(epoch);
    const std::vector<int64_t> idx = order.indices();
    for (int64_t b = 0; b < kSamples; b += kGlobalBatch) {
      std::vector<int64_t> rows(idx.begin() + b, idx.begin() + b + kGlobalBatch);
      datasets::Batch batch = data.get(rows);
      opt.zero_grad();
      mse((*model)(batch.x), batch.y).backward();
      opt.step();
    }
  }
  return model->parameters();
}

}  // namespace

TEST_CASE("fit: N ranks x batch 32/N give the weights of one process x batch 32 on the same samples") {
  const int world = dist::world_size();
  REQUIRE(kGlobalBatch % world == 0);
  auto data = make_data(false);
  auto model = make_model();
  auto ddp = std::make_shared<dist::DistributedDataParallel>(model);
  optim::SGD opt(model->parameters(), optim::SGDOptions(0.1).momentum(0.9));
  std::ostringstream log;
  train::FitOptions options;
  options.epochs = kEpochs;
  options.batch_size = kGlobalBatch / world;
  options.seed = kSeed;
  options.out = &log;
  train::History h = train::fit(*ddp, opt, mse, data, options);
  CHECK(h.steps == kEpochs * kSamples / kGlobalBatch);
  if (world > 1) {
    CHECK(max_abs_diff(model->parameters(), reference_weights(*data)) <= 1e-12);
    // Only rank 0 prints its epoch lines.
    CHECK((dist::rank() == 0) == !log.str().empty());
    // The epoch's loss is over all ranks: every rank reports the same.
    const double loss = h.epochs.back().get("loss");
    CHECK(dist::all_reduce_value(loss, dist::ReduceOp::max) == loss);
  } else {
    // A world of one: DDP is the identity, and fit trains as with the bare model.
    auto bare = make_model();
    optim::SGD bare_opt(bare->parameters(), optim::SGDOptions(0.1).momentum(0.9));
    train::fit(*bare, bare_opt, mse, data, options);
    CHECK(max_abs_diff(model->parameters(), bare->parameters()) == 0.0);
  }
}

TEST_CASE("fit: in a world of several processes a model without DistributedDataParallel is refused") {
  auto data = make_data(false);
  auto model = make_model();
  optim::SGD opt(model->parameters(), optim::SGDOptions(0.1));
  train::FitOptions options;
  options.quiet = true;
  if (dist::world_size() > 1) {
    CHECK_THROWS_WITH_AS(train::fit(*model, opt, mse, data, options),
                         doctest::Contains("is not a distributed::DistributedDataParallel"), std::invalid_argument);
    // distributed = false: each rank trains on its own (no collective, so the ranks may differ).
    options.distributed = false;
    CHECK_NOTHROW(train::fit(*model, opt, mse, data, options));
  } else {
    CHECK_NOTHROW(train::fit(*model, opt, mse, data, options));
  }
}

TEST_CASE("evaluate: over the ranks equals one rank evaluating all the data") {
  auto data = make_data(true);
  auto model = make_model();
  auto ce = [](const Tensor& out, const Tensor& y) { return nn::functional::cross_entropy(out, y); };
  train::Evaluation all = train::evaluate(*model, ce, *data, 10);         // split over the ranks
  train::Evaluation one = train::evaluate(*model, ce, *data, 10, false);  // this rank alone
  CHECK(all.samples == kSamples);
  CHECK(all.samples == one.samples);
  CHECK(all.correct == one.correct);
  CHECK(all.predictions == one.predictions);
  CHECK(std::abs(all.loss - one.loss) <= 1e-12);
  REQUIRE(all.confusion);
  REQUIRE(one.confusion);
  for (int64_t t = 0; t < 3; ++t)
    for (int64_t p = 0; p < 3; ++p) CHECK(all.confusion->count(t, p) == one.confusion->count(t, p));
}
