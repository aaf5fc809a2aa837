#include "autograd/parallel.hpp"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "autograd/blas.hpp"

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

/// The worker threads: persistent, blocked on a condition variable between jobs (never spinning,
/// so on a machine whose cores are busy a waiting thread gives its core to the one with work).
/// One job at a time: a caller that finds the pool busy (another user thread's kernel) runs its
/// loop on its own thread instead of waiting.
class Pool {
 public:
  static Pool& instance() {
    static Pool pool;
    return pool;
  }

  /// Runs body(t) for t in [0, parts) on the caller and up to parts − 1 workers; false (nothing
  /// run) when another job holds the pool.
  bool run(int64_t parts, void (*body)(void*, int64_t), void* ctx) {
    std::unique_lock<std::mutex> submit(submit_, std::try_to_lock);
    if (!submit.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(m_);
      while (static_cast<int64_t>(workers_.size()) < parts - 1)
        workers_.emplace_back([this] { worker_loop(); });
      body_ = body, ctx_ = ctx, parts_ = parts;
      next_.store(0, std::memory_order_relaxed);
      ++generation_;
    }
    work_cv_.notify_all();
    take_parts(body, ctx, parts);
    std::unique_lock<std::mutex> lock(m_);
    done_cv_.wait(lock, [&] { return done_ == parts && active_ == 0; });
    body_ = nullptr, done_ = 0;  // no worker holds the job now: the next may reuse the fields
    return true;
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& w : workers_) w.join();
  }

 private:
  void take_parts(void (*body)(void*, int64_t), void* ctx, int64_t parts) {
    int64_t finished = 0;
    for (int64_t t; (t = next_.fetch_add(1, std::memory_order_relaxed)) < parts; ++finished) body(ctx, t);
    if (finished > 0) {
      std::lock_guard<std::mutex> lock(m_);
      done_ += finished;
      if (done_ == parts) done_cv_.notify_all();
    }
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      void (*body)(void*, int64_t) = nullptr;
      void* ctx = nullptr;
      int64_t parts = 0;
      {
        std::unique_lock<std::mutex> lock(m_);
        work_cv_.wait(lock, [&] { return stop_ || (body_ != nullptr && generation_ != seen); });
        if (stop_) return;
        seen = generation_, body = body_, ctx = ctx_, parts = parts_;
        ++active_;
      }
      take_parts(body, ctx, parts);
      std::lock_guard<std::mutex> lock(m_);
      if (--active_ == 0) done_cv_.notify_all();
    }
  }

  std::mutex submit_;  // held by the caller of the running job
  std::mutex m_;       // guards everything below but next_
  std::condition_variable work_cv_, done_cv_;
  std::vector<std::thread> workers_;
  uint64_t generation_ = 0;
  void (*body_)(void*, int64_t) = nullptr;  // the job; null between jobs
  void* ctx_ = nullptr;
  int64_t parts_ = 0, done_ = 0;
  int active_ = 0;  // workers inside the job
  bool stop_ = false;
  std::atomic<int64_t> next_{0};  // the next part to take
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
  configure_blas();          // once: the kernel family
  openblas_set_num_threads(1);  // products split over this pool instead (blas.hpp)
}

int get_num_threads() { return threads_setting().load(std::memory_order_relaxed); }

namespace parallel {

bool in_parallel_region() { return t_in_parallel; }

namespace {
thread_local bool t_unsplit_products = false;
}  // namespace

UnsplitProducts::UnsplitProducts() : prev_(t_unsplit_products) { t_unsplit_products = true; }
UnsplitProducts::~UnsplitProducts() { t_unsplit_products = prev_; }

bool products_may_split() { return get_num_threads() > 1 && !t_in_parallel && !t_unsplit_products; }

const char* backend() { return "std::thread pool"; }

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
  auto call_body = [](void* c, int64_t t) { (*static_cast<decltype(body)*>(c))(t); };
  if (!Pool::instance().run(parts, call_body, &body))
    for (int64_t t = 0; t < parts; ++t) body(t);  // the pool is busy with another thread's job
  if (error) std::rethrow_exception(error);
}

}  // namespace detail
}  // namespace parallel
}  // namespace tapegrad
