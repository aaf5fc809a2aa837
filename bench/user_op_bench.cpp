// A user's benchmark main (docs/adding_an_op.md): one register_op, then the registry's benchmarks,
// which now include softsign/forward and softsign/backward beside the built-ins. Not run by
// `make bench`; ctest runs it on softsign alone ("bench: a user op is benchmarked").
#include "bench/registry_bench.hpp"
#include "tests/autograd/adding_an_op.hpp"

int main(int argc, char** argv) {
  softsign_example::register_softsign();
  return tapegrad::bench::registry_benchmark_main(argc, argv);
}
