// Run under mpirun -np 2 by tests/distributed/abort/expect_abort.sh: rank 1 fails while rank 0
// waits in an all_reduce that rank 1 never joins. Every rank must exit with an error, none hang.
//   failing_rank terminate      rank 1 throws out of main (std::terminate -> Session's handler)
//   failing_rank run_or_abort   rank 1 throws inside distributed::run_or_abort
//   failing_rank unwind         rank 1 throws through the Session's scope into a catch in main
#include <cstring>
#include <iostream>
#include <stdexcept>

#include "autograd/autograd.hpp"
#include "distributed/comm.hpp"

using namespace tapegrad;

namespace {
int work() {
  if (distributed::rank() == 1) throw std::runtime_error("rank 1 fails on purpose");
  Tensor t = ones({4});
  distributed::all_reduce(t);  // rank 0 waits here for rank 1
  std::cout << "rank " << distributed::rank() << " finished the all_reduce (it must not)\n";
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "terminate";
  if (std::strcmp(mode, "unwind") == 0) {
    try {
      distributed::Session session(&argc, &argv);
      return work();
    } catch (const std::exception& e) {
      std::cerr << "caught after the Session: " << e.what() << "\n";  // not reached on rank 1
      return 0;
    }
  }
  distributed::Session session(&argc, &argv);
  if (std::strcmp(mode, "run_or_abort") == 0) return distributed::run_or_abort(work);
  return work();
}
