#pragma once
/// \file storage.hpp
/// Storage: a reference-counted, 64-byte aligned byte buffer from tapegrad's pooling allocator.
///
/// Tensors share a Storage (reshape, detach and row slices are views); the buffer returns to a
/// per-thread free list when the last reference goes, so the steady state of a training loop
/// allocates nothing from the system. `storage_stats()` counts the bytes held by live storages,
/// which is how the tests prove that memory is flat across training steps.
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace tapegrad {

/// A shared handle to one aligned byte buffer, counted like a std::shared_ptr (the count sits in a
/// header before the bytes): copies share the buffer, which goes back to the freeing thread's pool
/// when the last handle goes. Handles of one buffer may be copied and destroyed on different threads
/// (atomic count); one handle object, and the bytes, are not synchronised. A default-constructed
/// handle is empty (defined() is false, data() null).
class Storage {
 public:
  Storage() = default;
  /// A new uninitialised buffer of `bytes` bytes (0 is allowed).
  explicit Storage(size_t bytes);
  /// Another handle to `o`'s buffer (no copy of the bytes).
  Storage(const Storage& o) noexcept : b_(o.b_) { retain(); }
  /// Takes `o`'s buffer; `o` is left empty.
  Storage(Storage&& o) noexcept : b_(o.b_) { o.b_ = nullptr; }
  /// Drops this handle's buffer and shares `o`'s.
  Storage& operator=(const Storage& o) noexcept {
    if (b_ != o.b_) { release(); b_ = o.b_; retain(); }
    return *this;
  }
  /// Drops this handle's buffer and takes `o`'s; `o` is left empty.
  Storage& operator=(Storage&& o) noexcept {
    if (this != &o) { release(); b_ = o.b_; o.b_ = nullptr; }
    return *this;
  }
  ~Storage() { release(); }

  /// The first byte (64-byte aligned), or null for an empty handle.
  void* data() const { return b_ ? static_cast<void*>(b_ + 1) : nullptr; }
  /// The size requested at construction (0 for an empty handle).
  size_t bytes() const { return b_ ? b_->bytes : 0; }
  /// Number of Storage handles sharing this buffer.
  long use_count() const { return b_ ? b_->refs.load(std::memory_order_relaxed) : 0; }
  /// Whether the handle holds a buffer.
  bool defined() const { return b_ != nullptr; }
  /// The buffer's version counter: bumped by every in-place write the library offers, shared by
  /// every view of the buffer (reshape, detach, slices), 0 for an empty handle. Autograd records it
  /// when an op saves a tensor for backward and checks it before that backward runs.
  uint64_t version() const { return b_ ? b_->version.load(std::memory_order_relaxed) : 0; }
  /// Increments version(); every in-place write (Tensor::mutable_data and the ops built on it) calls it.
  void bump_version() const { if (b_) b_->version.fetch_add(1, std::memory_order_relaxed); }

 private:
  struct alignas(64) Block {
    std::atomic<long> refs;
    std::atomic<uint64_t> version;
    size_t bytes;     // requested size
    size_t capacity;  // size of the pooled block (its bucket)
  };
  void retain() { if (b_) b_->refs.fetch_add(1, std::memory_order_relaxed); }
  void release();
  Block* b_ = nullptr;
};

/// Bytes currently held by live storages (requested sizes), and by the pool's free lists.
struct StorageStats {
  int64_t live_bytes;    ///< sum of bytes() over every live buffer, all threads
  int64_t live_buffers;  ///< number of live buffers, all threads
  int64_t cached_bytes;  ///< capacity of the free blocks kept by every thread's pool for reuse
  int64_t peak_live_bytes;  ///< the most live_bytes reached since start or reset_peak_storage()
};
/// A snapshot of the process-wide counters (atomics, read without a lock: each field is exact,
/// the fields are not read at one instant when other threads allocate meanwhile).
StorageStats storage_stats();
/// Starts a new peak measurement from the current live bytes (e.g. before one training step).
void reset_peak_storage();
/// Returns the calling thread's cached free blocks to the system.
void storage_release_cache();

namespace detail {
/// The Profiler's memory hook (debug.hpp): called with +bytes when a storage is allocated and
/// −bytes when one is freed, on the thread that does it. Null when no profiler runs on this thread,
/// so it costs one thread-local pointer test per allocation and per free.
extern thread_local void (*on_storage)(int64_t bytes);
}  // namespace detail

}  // namespace tapegrad
