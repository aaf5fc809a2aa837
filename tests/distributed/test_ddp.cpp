// DistributedDataParallel: N ranks × batch B/N give the weights of 1 process × batch B, bucketing,
// overlap, no_sync and unused parameters. Written for any world size that divides 32: one process
// (the discovered tests) checks the single-rank path, mpirun -np 2 the real reduction.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "autograd/autograd.hpp"
#include "distributed/comm.hpp"
#include "distributed/ddp.hpp"
#include "distributed/weights.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "optim/adam.hpp"
#include "optim/sgd.hpp"

using namespace tapegrad;
namespace dist = tapegrad::distributed;
using testing::max_abs_diff;

namespace {

constexpr int64_t kSamples = 32;

// 4 → 16 → 16 → 3, tanh; an optional layer the forward never uses.
struct Mlp : nn::UnaryModule {
  std::shared_ptr<nn::Linear> fc1, fc2, fc3, spare;
  Mlp(DType dtype, bool with_spare = false) {
    Generator gen(7);  // the same weights on every rank before any broadcast
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 16, gen));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(16, 16, gen));
    fc3 = register_module("fc3", std::make_shared<nn::Linear>(16, 3, gen));
    if (with_spare) spare = register_module("spare", std::make_shared<nn::Linear>(3, 3, gen));
    to(dtype);
  }
  Tensor forward(const Tensor& x) override { return (*fc3)(tanh((*fc2)(tanh((*fc1)(x))))); }
};

// The data set: step s uses rows of a fixed [32, 4] input and [32, 3] target, shifted per step.
struct Data {
  Tensor x, y;
};
Data batch(int step, DType dtype, int64_t begin, int64_t end) {
  Generator gen(100 + static_cast<uint64_t>(step));
  std::vector<double> xs, ys;
  for (int64_t i = 0; i < kSamples * 4; ++i) xs.push_back(gen.normal());
  for (int64_t i = 0; i < kSamples * 3; ++i) ys.push_back(gen.normal());
  Tensor x = tensor(xs, {kSamples, 4}, dtype), y = tensor(ys, {kSamples, 3}, dtype);
  return {slice(x, 0, begin, end).clone().detach(), slice(y, 0, begin, end).clone().detach()};
}

enum class Opt { sgd, adam };

std::unique_ptr<optim::Optimizer> make_optimizer(Opt which, std::vector<Tensor> params) {
  if (which == Opt::sgd) return std::make_unique<optim::SGD>(std::move(params), optim::SGDOptions(0.1).momentum(0.9));
  return std::make_unique<optim::Adam>(std::move(params), optim::AdamOptions(0.01));
}

// N steps: the reference model on all 32 rows, and a DDP replica on this rank's rows.
double ddp_against_one_process(DType dtype, Opt which, double bucket_mb) {
  const int n = dist::world_size(), r = dist::rank();
  const int64_t shard = kSamples / n;
  auto reference = std::make_shared<Mlp>(dtype);
  auto replica = std::make_shared<Mlp>(dtype);
  dist::DistributedDataParallel ddp(replica, dist::DDPOptions().bucket_cap_mb(bucket_mb));
  auto ref_opt = make_optimizer(which, reference->parameters());
  auto ddp_opt = make_optimizer(which, ddp.parameters());
  for (int step = 0; step < 6; ++step) {
    Data all = batch(step, dtype, 0, kSamples), mine = batch(step, dtype, r * shard, (r + 1) * shard);
    ref_opt->zero_grad();
    nn::functional::mse_loss((*reference)(all.x), all.y).backward();
    ref_opt->step();
    ddp_opt->zero_grad();
    nn::functional::mse_loss(ddp(mine.x), mine.y).backward();  // returns with averaged gradients
    ddp_opt->step();
  }
  return max_abs_diff(reference->parameters(), replica->parameters());
}

}  // namespace

TEST_CASE("DDP: N ranks x 32/N rows give the weights of one process x 32 rows, SGD and Adam") {
  REQUIRE(kSamples % dist::world_size() == 0);
  for (Opt which : {Opt::sgd, Opt::adam}) {
    CAPTURE(static_cast<int>(which));
    for (double mb : {25.0, 0.0005}) {  // one bucket; several (512 bytes each)
      CAPTURE(mb);
      CHECK(ddp_against_one_process(DType::f64, which, mb) <= 1e-12);
      CHECK(ddp_against_one_process(DType::f32, which, mb) <= 1e-6);
    }
  }
}

TEST_CASE("DDP: construction broadcasts rank 0's weights") {
  Generator gen(55 + static_cast<uint64_t>(dist::rank()));  // different weights per rank
  auto model = std::make_shared<nn::Linear>(5, 4, gen);
  dist::DistributedDataParallel ddp(model);
  for (Tensor p : ddp.parameters()) {
    Tensor mx = p.clone().detach(), neg = (p * -1.0).detach();
    dist::all_reduce(mx, dist::ReduceOp::max);
    dist::all_reduce(neg, dist::ReduceOp::max);
    CHECK(max_abs_diff({mx}, {neg * -1.0}) == 0.0);  // max == min over ranks
  }
  CHECK(ddp.named_parameters()[0].first == "module.weight");
  CHECK(ddp.repr().find("DistributedDataParallel(") == 0);
}

TEST_CASE("DDP: buckets in reverse registration order, and the first starts before backward ends") {
  auto model = std::make_shared<Mlp>(DType::f64);
  // float64 values: fc3 3 + 48, fc2 16 + 256, fc1 16 + 64; a 256-byte cap (32 values) closes a
  // bucket after each weight: {fc3.bias, fc3.weight}, {fc2.bias, fc2.weight}, {fc1.bias, fc1.weight}
  dist::DistributedDataParallel ddp(model, dist::DDPOptions().bucket_cap_mb(0.25 / 1024));
  const auto buckets = ddp.bucket_parameters();
  REQUIRE(buckets.size() == 3);
  CHECK(buckets.front().front() == ddp.parameters().size() - 1);  // fc3.bias first
  CHECK(buckets.back().back() == 0);                              // fc1.weight last
  Data d = batch(0, DType::f64, 0, 8);
  nn::functional::mse_loss(ddp(d.x), d.y).backward();
  // fc1's parameters are the last to complete; by then fc3's and fc2's buckets were started.
  CHECK(ddp.buckets_started_before_last_hook() >= 1);
  CHECK(ddp.buckets_started_before_last_hook() < ddp.bucket_count());
}

TEST_CASE("DDP: no_sync accumulates locally and the next synchronised pass averages the sums") {
  const int n = dist::world_size(), r = dist::rank();
  auto model = std::make_shared<Mlp>(DType::f64);
  dist::DistributedDataParallel ddp(model, dist::DDPOptions().bucket_cap_mb(0.001));
  // Reference gradients: each rank's two micro-batches, summed locally, averaged over ranks.
  auto reference = std::make_shared<Mlp>(DType::f64);
  Data a = batch(1, DType::f64, r * 4, r * 4 + 4), b = batch(2, DType::f64, r * 4, r * 4 + 4);
  nn::functional::mse_loss((*reference)(a.x), a.y).backward();
  nn::functional::mse_loss((*reference)(b.x), b.y).backward();
  std::vector<Tensor> expected;
  for (Tensor p : reference->parameters()) {
    Tensor g = p.grad().clone().detach();
    dist::all_reduce(g, dist::ReduceOp::mean);
    expected.push_back(g);
  }
  std::vector<Tensor> local_after_first;
  {
    auto guard = ddp.no_sync();
    nn::functional::mse_loss(ddp(a.x), a.y).backward();
    for (Tensor p : model->parameters()) local_after_first.push_back(p.grad().clone().detach());
  }
  // No communication happened: the local gradients are reference's first micro-batch ones.
  nn::functional::mse_loss(ddp(b.x), b.y).backward();
  std::vector<Tensor> got;
  for (Tensor p : model->parameters()) got.push_back(p.grad());
  CHECK(max_abs_diff(got, expected) <= 1e-12);
  if (n > 1) CHECK(max_abs_diff(local_after_first, expected) > 1e-6);  // it was not yet averaged
}

TEST_CASE("DDP: a parameter without a gradient is an error unless find_unused_parameters") {
  Data d = batch(3, DType::f64, 0, 4);
  auto model = std::make_shared<Mlp>(DType::f64, /*with_spare=*/true);
  {
    dist::DistributedDataParallel ddp(model);
    CHECK_THROWS_WITH_AS(nn::functional::mse_loss(ddp(d.x), d.y).backward(),
                         doctest::Contains("received no gradient in this backward pass: module.spare.weight, "
                                           "module.spare.bias"),
                         std::runtime_error);
  }
  model->zero_grad();
  dist::DistributedDataParallel ddp(model, dist::DDPOptions().find_unused_parameters(true));
  nn::functional::mse_loss(ddp(d.x), d.y).backward();
  REQUIRE(model->spare->weight.grad().defined());  // zeros: no rank used it
  CHECK(model->spare->weight.grad().to_vector() == std::vector<double>(9, 0.0));
  CHECK(model->fc1->weight.grad().defined());
}

TEST_CASE("DDP: rejects a null module, a bad bucket cap and a model without trainable parameters") {
  CHECK_THROWS_AS(dist::DistributedDataParallel(nullptr), std::invalid_argument);
  CHECK_THROWS_WITH_AS(dist::DistributedDataParallel(std::make_shared<nn::Linear>(2, 2), dist::DDPOptions().bucket_cap_mb(0)),
                       doctest::Contains("bucket_cap_mb must be positive"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(dist::DistributedDataParallel(std::make_shared<nn::Tanh>()),
                       doctest::Contains("has no parameter that requires grad"), std::invalid_argument);
}
