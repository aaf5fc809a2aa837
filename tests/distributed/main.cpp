// The distributed tests' main: one distributed::Session around doctest, so the same binary runs as
// one process (ctest's discovered tests: a world of one) and under `mpirun -np 2` (the "distributed:
// mpirun -np 2" test), where every rank runs every test case in the same order.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "distributed/comm.hpp"

int main(int argc, char** argv) {
  tapegrad::distributed::Session session(&argc, &argv);
  doctest::Context context(argc, argv);
  return context.run();  // every rank reports; mpirun's status is non-zero when any rank failed
}
