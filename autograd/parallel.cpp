#include "autograd/parallel.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <string>

#include "autograd/blas.hpp"

#if defined(TAPEGRAD_PARALLEL_OPENMP)
#include <omp.h>
#else
#include <thread>
#endif

// OpenBLAS (declared here: <cblas.h> conflicts with xtensor-blas's prototypes).
extern "C" void openblas_set_num_threads(int);

namespace tapegrad {
namespace {

/// TAPEGRAD_NUM_THREADS, or 1. A malformed value is reported once on stderr and ignored (this runs
/// before main can catch anything).
int initial_threads() {
  const char* env = std::getenv("TAPEGRAD_NUM_THREADS");
  if (env == nullptr || *env == '\0') return 1;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(env, &end, 10);
  if (errno != 0 || *end != '\0' || n < 1 || n > 1024) {
    std::cerr << "tapegrad: ignoring TAPEGRAD_NUM_THREADS='" << env
              << "' (expected an integer from 1 to 1024); using 1 thread\n";
    return 1;
  }
  return static_cast<int>(n);
}

std::atomic<int>& threads_setting() {
  static std::atomic<int> threads{initial_threads()};
  return threads;
}

thread_local bool t_in_parallel = false;

/// Sets the flag for the duration of one range and restores it (also when fn throws).
struct RegionFlag {
  bool prev = t_in_parallel;
  RegionFlag() { t_in_parallel = true; }
  ~RegionFlag() { t_in_parallel = prev; }
};

/// Range t of `parts` over [begin, end) in whole grains: [lo, hi).
void part(int64_t begin, int64_t end, int64_t grain, int64_t parts, int64_t t, int64_t& lo, int64_t& hi) {
  const int64_t grains = (end - begin + grain - 1) / grain;
  lo = begin + grains * t / parts * grain;
  hi = begin + grains * (t + 1) / parts * grain;
  if (hi > end) hi = end;
}

}  // namespace

void set_num_threads(int n) {
  if (n < 1)
    throw std::invalid_argument("tapegrad::set_num_threads: needs at least 1 thread, got " + std::to_string(n));
  threads_setting().store(n, std::memory_order_relaxed);
  configure_blas();  // once: the kernel family (and the start-up thread count, overridden here)
#if !defined(__SANITIZE_THREAD__)  // GCC's -fsanitize=thread
  openblas_set_num_threads(n);
#endif
}

int get_num_threads() { return threads_setting().load(std::memory_order_relaxed); }

namespace parallel {

bool in_parallel_region() { return t_in_parallel; }

const char* backend() {
#if defined(TAPEGRAD_PARALLEL_OPENMP)
  return "openmp";
#else
  return "std::thread";
#endif
}

SerialBlas::SerialBlas(bool active) : active_(active && get_num_threads() > 1) {
#if !defined(__SANITIZE_THREAD__)
  if (active_) openblas_set_num_threads(1);
#endif
}

SerialBlas::~SerialBlas() {
#if !defined(__SANITIZE_THREAD__)
  if (active_) openblas_set_num_threads(get_num_threads());
#endif
}

namespace detail {

void run(int64_t begin, int64_t end, int64_t grain, int threads, void (*call)(void*, int64_t, int64_t), void* ctx) {
  const int64_t grains = (end - begin + grain - 1) / grain;
  const int64_t parts = grains < threads ? grains : threads;
  std::exception_ptr error;
  std::mutex error_mutex;
  auto body = [&](int64_t t) {
    int64_t lo = 0, hi = 0;
    part(begin, end, grain, parts, t, lo, hi);
    if (lo >= hi) return;
    RegionFlag flag;
    try {
      call(ctx, lo, hi);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
#if defined(TAPEGRAD_PARALLEL_OPENMP)
  // OpenMP may grant fewer threads than asked (OMP_THREAD_LIMIT, nesting): each takes every
  // team-size-th range, so all of them run.
#pragma omp parallel num_threads(static_cast<int>(parts))
  for (int64_t t = omp_get_thread_num(); t < parts; t += omp_get_num_threads()) body(t);
#else
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(parts - 1));
  for (int64_t t = 1; t < parts; ++t) workers.emplace_back(body, t);
  body(0);
  for (auto& w : workers) w.join();
#endif
  if (error) std::rethrow_exception(error);
}

}  // namespace detail
}  // namespace parallel
}  // namespace tapegrad
