// Forward and backward of every op in the registry that has benchmark inputs (OpInfo::bench):
// autograd's built-ins and nn's layers and losses (nn/functional.hpp, included here, puts them in
// the registry). `make bench` writes this binary's repeated run to out/bench/bench_registry.json;
// `make bench-baseline` compares a new run with it (scripts/bench_baseline.py).
//
//   build/bench/bench_registry --benchmark_min_time=0.05 --benchmark_filter='nn\.conv2d/'
#include "bench/registry_bench.hpp"
#include "nn/functional.hpp"

int main(int argc, char** argv) { return tapegrad::bench::registry_benchmark_main(argc, argv); }
