#pragma once
/// \file parallel.hpp
/// Intra-op threads: one setting for BLAS and for tapegrad's own kernels.
///
/// `set_num_threads(n)` sets the number of threads tapegrad's kernels split a large tensor over,
/// matrix products included: OpenBLAS itself runs on one thread, and a large product splits C into
/// bands, one single-threaded OpenBLAS call per thread (ops/linalg.cpp; OpenBLAS's own workers
/// spin-wait between calls, and on 2 cores that spinning took a fifth of the samples of a 2-thread
/// CNN step from the kernels between products). At start the setting comes from the environment variable
/// `TAPEGRAD_NUM_THREADS` (an integer ≥ 1), and is **1 when it is unset**: the products and
/// elementwise kernels of a small training step (the batch-32 MLP's) are too small to split, and
/// handing them to another thread costs more than it saves; the machines this library is measured
/// on are shared, so a second core is not free. Programs that want threads ask for them
/// (`--threads N` in the examples, `TAPEGRAD_NUM_THREADS=N` for any program, including bench_*).
/// When `TAPEGRAD_NUM_THREADS` is unset, a user's `OPENBLAS_NUM_THREADS` / `OMP_NUM_THREADS` still
/// decide BLAS's own count (tapegrad then splits nothing: its own count is 1) until
/// `set_num_threads` is called.
///
/// The kernels run on a small pool of persistent std::threads that block on a condition variable
/// between jobs. Not OpenMP: GCC's libgomp spin-waits after each parallel region (for up to ~0.3 ms
/// unless OMP_WAIT_POLICY=passive, which libgomp reads only when it is loaded, before a library can
/// set it), and on a machine whose other core is busy the spinning thread took the core from the one
/// with work: measured here with libgomp (bench_parallel, 2 threads against 1, load ≈ 3.5 on 2
/// cores), a [2048, 2048] sum took 8.2 ms against 1.6 ms and conv2d forward + backward 33 ms against
/// 19 ms. ThreadSanitizer sees the pool's threads, mutex and condition variables (std::thread is
/// instrumented; Debian's libgomp is not), so `make test-tsan` checks every kernel's accesses with
/// no suppression (libopenblas is not instrumented: TSan sees the pool's threads around its calls).
///
/// **Grain.** A loop is split only when it has more than `grain` units of work per extra thread,
/// so small tensors stay on the calling thread (no hand-off at all). Loops nested inside a parallel
/// region run serially.
///
/// **Determinism.** Every kernel of tapegrad's own gives bitwise the same result at any thread count:
///  - elementwise and row-wise kernels (activations, softmax / log_softmax / cross-entropy rows,
///    im2col / col2im, pooling, optimizer updates, the batch gather) compute each output element
///    exactly as the serial loop does; threads only take different elements;
///  - full reductions (`parallel_reduce`, the sum of a whole tensor) split into chunks whose size is
///    fixed (never derived from the thread count) and add the chunk partials in chunk order, at one
///    thread too;
///  - the conv2d weight gradient sums per-image products in fixed groups of images, then adds the
///    groups' partials in group order; its Winograd path (nn/conv_winograd.hpp) likewise sums
///    fixed blocks of tiles, and runs its products unsplit (UnsplitProducts); layer and RMS norm
///    sum their weight and bias gradients over fixed chunks of rows, likewise;
///  - attention runs each batch·head on one thread.
/// The exception: a large matrix product split into bands over threads (linear, matmul, attention,
/// and conv2d's im2col products when its images are not split) may differ in the last bits between
/// thread counts, because OpenBLAS's kernel computes a band's last rows with another register block
/// than the same rows of the unsplit product (tests/threads bounds the difference by the rounding
/// of a k-term dot product). At a fixed thread count every partition is fixed, so a product, a
/// training step and `fit` repeat bitwise.
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace tapegrad {

/// Sets the intra-op thread count: tapegrad's kernels, large matrix products included (OpenBLAS
/// itself is set to one thread).
/// Throws std::invalid_argument naming the function and the value when n < 1. Process-wide.
void set_num_threads(int n);
/// The intra-op thread count now (≥ 1): TAPEGRAD_NUM_THREADS at start, 1 if unset.
int get_num_threads();

namespace parallel {

/// Elements per thread below which an elementwise loop stays serial (and the chunk size of full
/// reductions). 32768 floats is 128 KiB per operand: the hand-off (~2–5 µs) is then below 10%.
inline constexpr int64_t kGrain = 32768;

/// Whether this thread is running a chunk of a parallel_for (nested loops then run serially).
bool in_parallel_region();
/// The backend's name ("std::thread pool").
const char* backend();

namespace detail {
/// Runs call(ctx, lo, hi) over [begin, end) split into contiguous ranges of whole grains, one per
/// thread (up to `threads`), on the pool (or all on the caller when another thread's job holds it);
/// rethrows the first exception a range threw.
void run(int64_t begin, int64_t end, int64_t grain, int threads, void (*call)(void*, int64_t, int64_t), void* ctx);
}  // namespace detail

/// Whether parallel_for(0, n, grain, …) would split the range over threads now.
inline bool will_split(int64_t n, int64_t grain) {
  return n > (grain < 1 ? 1 : grain) && get_num_threads() > 1 && !in_parallel_region();
}

/// RAII: matrix products on this thread run unsplit (one single-threaded OpenBLAS call each) for a
/// scope, as they do inside a parallel region. A split product may differ from the unsplit one in
/// the last bits (ops/linalg.cpp), so a kernel whose result must not depend on the thread count
/// holds one around loops that may run serially (Winograd's tile blocks).
class UnsplitProducts {
 public:
  /// Products on this thread run unsplit until the scope ends.
  UnsplitProducts();
  /// Restores the previous setting.
  ~UnsplitProducts();
  UnsplitProducts(const UnsplitProducts&) = delete;
  UnsplitProducts& operator=(const UnsplitProducts&) = delete;

 private:
  bool prev_;
};

/// Whether a matrix product on this thread may split over threads now: more than one thread is
/// set, and the thread is neither inside a parallel region nor in an UnsplitProducts scope.
bool products_may_split();

/// Calls fn(lo, hi) on disjoint contiguous ranges covering [begin, end): on the calling thread
/// alone when the range has at most `grain` items, when one thread is set, or inside another
/// parallel region; otherwise on min(threads, ⌈n / grain⌉) threads, each range a whole number of
/// grains (the last may be shorter). fn must only write what its range owns.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& fn) {
  if (end <= begin) return;
  if (grain < 1) grain = 1;
  if (!will_split(end - begin, grain)) {
    fn(begin, end);
    return;
  }
  using Fn = std::remove_reference_t<F>;
  detail::run(begin, end, grain, get_num_threads(),
              [](void* ctx, int64_t lo, int64_t hi) { (*static_cast<Fn*>(ctx))(lo, hi); },
              const_cast<void*>(static_cast<const void*>(&fn)));
}

/// A reduction whose result does not depend on the thread count: [begin, end) is cut into chunks
/// of exactly `chunk` items (the last may be shorter), chunk_fn(lo, hi) returns each chunk's
/// partial, and the partials are folded left to right: combine(…combine(identity, p₀)…, p_last).
/// At one thread the same chunks are computed, in order, so results are bitwise equal.
template <class T, class ChunkFn, class Combine>
T parallel_reduce(int64_t begin, int64_t end, int64_t chunk, T identity, ChunkFn&& chunk_fn, Combine&& combine) {
  if (end <= begin) return identity;
  if (chunk < 1) chunk = 1;
  const int64_t chunks = (end - begin + chunk - 1) / chunk;
  if (chunks == 1) return combine(identity, chunk_fn(begin, end));
  std::vector<T> partials(static_cast<size_t>(chunks), identity);
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t lo = begin + c * chunk;
      partials[static_cast<size_t>(c)] = chunk_fn(lo, end - lo < chunk ? end : lo + chunk);
    }
  });
  T acc = identity;
  for (const T& p : partials) acc = combine(acc, p);
  return acc;
}

/// The grain, in rows, for a loop over rows of `row_cost` elements each: rows such that one
/// thread's share is at least kGrain elements.
inline int64_t rows_grain(int64_t row_cost) { return row_cost >= kGrain ? 1 : kGrain / (row_cost < 1 ? 1 : row_cost); }

}  // namespace parallel
}  // namespace tapegrad
