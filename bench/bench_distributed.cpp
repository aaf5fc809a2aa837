// Collectives and DDP over MPI. Run under mpirun (make bench-distributed):
//   mpirun -np 2 --oversubscribe build/bench/bench_distributed
// Every rank runs every benchmark with the same fixed iteration counts (adaptive counts could
// differ between ranks and leave one waiting in a collective); only rank 0 reports. Times are wall
// clock (UseRealTime / manual): communication waits, so CPU time would not measure it.
//
// BM_AllReduce/<bytes>: one blocking float32 all_reduce (sum) of 8 B to 64 MiB (factors of 8, then 64 MiB); "bus_bw" is
//   bytes moved per second as in nccl-tests (2(N-1)/N · bytes / time, a ring all-reduce's traffic).
// BM_DDPOverlap: one step (forward + backward) of an MLP (784-1024-1024-10, batch 64, float32,
//   1.86 M parameters, 2 MiB buckets: 2 of them) measured three ways in each iteration, side by side:
//   local (no_sync: no communication), comm (the same gradients all-reduced after backward,
//   blocking, bucket by bucket), ddp (DistributedDataParallel, all-reduce overlapped with backward).
//   hidden = 1 - (ddp - local) / comm: the share of the all-reduce time hidden behind backward
//   (medians over the iterations; noise can push it below 0 or above 1, it is not clamped).
//   Open MPI has no progress thread here: a started MPI_Iallreduce advances only inside MPI calls,
//   which DDP makes from its hooks (MPI_Test on the started buckets), not during a long matmul.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "autograd/autograd.hpp"
#include "distributed/comm.hpp"
#include "distributed/ddp.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"

using namespace tapegrad;
namespace dist = tapegrad::distributed;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_AllReduce(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  Tensor t = ones({std::max<int64_t>(1, bytes / 4)}, DType::f32);
  for (auto _ : state) dist::all_reduce(t);
  const int n = dist::world_size();
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["bus_bw"] = benchmark::Counter(2.0 * (n - 1) / n * static_cast<double>(bytes),
                                                benchmark::Counter::kIsIterationInvariantRate);
}
// Registered in main for 8 B, 64 B, ... 16 MiB and 64 MiB, each with a fixed iteration count (the
// same on every rank): about 256 MiB moved per size, between 10 and 1000 calls.
void register_all_reduce_sizes() {
  std::vector<int64_t> sizes;
  for (int64_t bytes = 8; bytes <= (int64_t{16} << 20); bytes *= 8) sizes.push_back(bytes);
  sizes.push_back(int64_t{64} << 20);
  for (int64_t bytes : sizes)
    benchmark::RegisterBenchmark("BM_AllReduce", BM_AllReduce)
        ->Arg(bytes)
        ->UseRealTime()
        ->Iterations(std::clamp<int64_t>((int64_t{256} << 20) / bytes, 10, 1000));
}

struct Mlp : nn::UnaryModule {
  std::shared_ptr<nn::Linear> fc1, fc2, fc3;
  Mlp() {
    Generator gen(3);
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(784, 1024, gen));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(1024, 1024, gen));
    fc3 = register_module("fc3", std::make_shared<nn::Linear>(1024, 10, gen));
  }
  Tensor forward(const Tensor& x) override { return (*fc3)(relu((*fc2)(relu((*fc1)(x))))); }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void BM_DDPOverlap(benchmark::State& state) {
  auto model = std::make_shared<Mlp>();
  dist::DistributedDataParallel ddp(model, dist::DDPOptions().bucket_cap_mb(2));
  Generator gen(11 + static_cast<uint64_t>(dist::rank()));
  std::vector<double> xs(64 * 784);
  for (double& v : xs) v = gen.normal();
  Tensor x = tensor(xs, {64, 784}), y = zeros({64, 10});
  // The buckets' flat buffers, for the blocking all-reduce after backward ("comm").
  std::vector<Tensor> flats;
  for (const auto& bucket : ddp.bucket_parameters()) {
    int64_t numel = 0;
    for (size_t i : bucket) numel += ddp.parameters()[i].numel();
    flats.push_back(zeros({numel}));
  }
  auto step = [&] {
    ddp.zero_grad();
    nn::functional::mse_loss(ddp(x), y).backward();
  };
  std::vector<double> local, comm, overlapped;
  for (auto _ : state) {
    dist::barrier();
    auto t0 = std::chrono::steady_clock::now();
    {
      auto guard = ddp.no_sync();
      step();
    }
    local.push_back(seconds_since(t0));
    dist::barrier();
    t0 = std::chrono::steady_clock::now();
    for (Tensor& f : flats) dist::all_reduce(f, dist::ReduceOp::mean);
    comm.push_back(seconds_since(t0));
    dist::barrier();
    t0 = std::chrono::steady_clock::now();
    step();
    const double t = seconds_since(t0);
    overlapped.push_back(t);
    state.SetIterationTime(t);
  }
  const double l = median(local), c = median(comm), d = median(overlapped);
  state.counters["local_ms"] = l * 1e3;
  state.counters["comm_ms"] = c * 1e3;
  state.counters["ddp_ms"] = d * 1e3;
  state.counters["hidden"] = 1.0 - (d - l) / c;
  state.counters["buckets"] = static_cast<double>(ddp.bucket_count());
  state.counters["started_before_last_hook"] = static_cast<double>(ddp.buckets_started_before_last_hook());
}
BENCHMARK(BM_DDPOverlap)->UseManualTime()->Iterations(30)->Unit(benchmark::kMillisecond);

// Rank 0 prints; the other ranks run the same benchmarks silently.
class NullReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  dist::Session session(&argc, &argv);
  register_all_reduce_sizes();
  benchmark::Initialize(&argc, argv);
  if (dist::rank() == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    NullReporter quiet;
    benchmark::RunSpecifiedBenchmarks(&quiet);
  }
  benchmark::Shutdown();
  return 0;
}
