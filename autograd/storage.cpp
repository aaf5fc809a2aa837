#include "autograd/storage.hpp"

#include <cstdlib>
#include <new>
#include <vector>

namespace tapegrad {
namespace {

std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_live_buffers{0};
std::atomic<int64_t> g_cached_bytes{0};
std::atomic<int64_t> g_peak_bytes{0};

void raise_peak(int64_t live) {
  int64_t peak = g_peak_bytes.load(std::memory_order_relaxed);
  while (live > peak && !g_peak_bytes.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
}

constexpr int kBuckets = 48;
constexpr size_t kMaxPooled = size_t(64) << 20;   // larger blocks go straight to the system
constexpr int64_t kMaxCachedPerThread = int64_t(512) << 20;

int bucket_of(size_t capacity) {
  int b = 0;
  while ((size_t(64) << b) < capacity) ++b;
  return b;
}

// Set when the thread's pool is destroyed. Tensors that outlive it (a static Tensor is destroyed
// after the main thread's thread_locals) then go straight to the system: pushing them onto the
// destroyed free lists was a heap-use-after-free at exit. A bool needs no destructor, so it stays
// readable until the thread ends.
thread_local bool t_pool_gone = false;

/// Per-thread free lists, one per power-of-two size class.
struct Pool {
  std::vector<void*> free[kBuckets];
  int64_t cached = 0;
  ~Pool() {
    clear();
    t_pool_gone = true;
  }
  void clear() {
    for (auto& list : free) {
      for (void* p : list) ::operator delete(p, std::align_val_t(64));
      list.clear();
    }
    g_cached_bytes -= cached;
    cached = 0;
  }
};
thread_local Pool t_pool;

}  // namespace

namespace detail {
thread_local void (*on_storage)(int64_t) = nullptr;
}

Storage::Storage(size_t bytes) {
  size_t total = sizeof(Block) + bytes;
  size_t capacity = total;
  void* mem = nullptr;
  if (total <= kMaxPooled && !t_pool_gone) {
    int b = bucket_of(total);
    capacity = size_t(64) << b;
    auto& list = t_pool.free[b];
    if (!list.empty()) {
      mem = list.back();
      list.pop_back();
      t_pool.cached -= static_cast<int64_t>(capacity);
      g_cached_bytes -= static_cast<int64_t>(capacity);
    }
  }
  if (!mem) mem = ::operator new(capacity, std::align_val_t(64));
  b_ = new (mem) Block{};
  b_->refs.store(1, std::memory_order_relaxed);
  b_->version.store(0, std::memory_order_relaxed);
  b_->bytes = bytes;
  b_->capacity = capacity;
  raise_peak(g_live_bytes += static_cast<int64_t>(bytes));
  ++g_live_buffers;
  if (detail::on_storage) detail::on_storage(static_cast<int64_t>(bytes));
}

void Storage::release() {
  if (!b_) return;
  if (b_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    g_live_bytes -= static_cast<int64_t>(b_->bytes);
    --g_live_buffers;
    if (detail::on_storage) detail::on_storage(-static_cast<int64_t>(b_->bytes));
    size_t capacity = b_->capacity;
    void* mem = b_;
    b_->~Block();
    if (capacity <= kMaxPooled && !t_pool_gone &&
        t_pool.cached + static_cast<int64_t>(capacity) <= kMaxCachedPerThread) {
      t_pool.free[bucket_of(capacity)].push_back(mem);
      t_pool.cached += static_cast<int64_t>(capacity);
      g_cached_bytes += static_cast<int64_t>(capacity);
    } else {
      ::operator delete(mem, std::align_val_t(64));
    }
  }
  b_ = nullptr;
}

StorageStats storage_stats() {
  return {g_live_bytes.load(), g_live_buffers.load(), g_cached_bytes.load(), g_peak_bytes.load()};
}
void reset_peak_storage() { g_peak_bytes.store(g_live_bytes.load()); }
void storage_release_cache() { t_pool.clear(); }

}  // namespace tapegrad
