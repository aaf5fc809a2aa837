// The tape's cost in instructions, for valgrind --tool=callgrind (repeatable on a shared, noisy
// machine, unlike wall time): bench_tape's chain, y = tanh(y·1.0001 + 0.0001) over 1000 links
// (3 recorded ops each), forward + backward + free, ROUNDS times; "fwd" records only.
//
//   for r in 10 30; do valgrind --tool=callgrind --callgrind-out-file=/dev/null build/bench/tape_instructions $r 2>&1 | grep Collected; done
//   instructions per op = (Ir(30) − Ir(10)) / (20 · 3000)
#include <cstdlib>
#include <cstring>

#include "autograd/autograd.hpp"

using namespace tapegrad;

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 10;
  const bool forward_only = argc > 2 && std::strcmp(argv[2], "fwd") == 0;
  Tensor x = tensor({0.5}).requires_grad_();
  double sink = 0;
  for (int r = 0; r < rounds; ++r) {
    Tensor y = x;
    for (int i = 0; i < 1000; ++i) y = tanh(y * 1.0001 + 0.0001);
    if (forward_only) continue;
    y.backward();
    sink += x.grad().item();
    x.zero_grad();
  }
  return sink > 1e300;
}
