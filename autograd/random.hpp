#pragma once
/// \file random.hpp
/// One seedable generator serves every random thing in tapegrad (rand, randn, initializers,
/// dropout, shuffling), so a run with the same seed is bitwise reproducible. The default one is
/// per thread (see default_generator for how each thread's is seeded); a Generator object itself
/// is not thread-safe: share one between threads only under a lock of your own.
#include <cstdint>
#include <random>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// A 64-bit Mersenne Twister with tapegrad's own uniform, normal and integer draws (the same
/// stream on every platform, unlike the standard distributions).
class Generator {
 public:
  /// A generator started at `seed` (0x5eed is the default generators' seed before manual_seed).
  explicit Generator(uint64_t seed = 0x5eed) : engine_(seed) {}
  /// Restarts the stream at `s`.
  void seed(uint64_t s) { engine_.seed(s); }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(engine_() >> 11) * (1.0 / 9007199254740992.0); }
  /// Standard normal (Box–Muller, implementation-independent).
  double normal();
  /// Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return engine_() % n; }
  /// The underlying engine, for std algorithms (std::shuffle); draws advance this generator.
  std::mt19937_64& engine() { return engine_; }
  /// The full state, for run states (train/run_state.hpp) (std::mt19937_64's textual form).
  std::string state() const;
  /// Restores a state() string; throws std::invalid_argument when it does not parse.
  void set_state(const std::string& s);

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

/// The calling thread's default generator. Each thread has its own (thread_local, no lock), so
/// threads that initialise layers or call randn concurrently never share generator state.
///
/// Seeding rule. A thread's generator is created on its first use, seeded with
/// `thread_seed(seed, k)`: `seed` is the last value given to manual_seed (0x5eed before any), and
/// `k` counts the generators created since that call — the calling thread of manual_seed holds
/// k = 0, and thread_seed(seed, 0) = seed. Hence:
///   - a single-threaded program draws exactly the stream of Generator(seed), as it always has;
///   - after `manual_seed(s)` on the main thread, worker threads get thread_seed(s, 1),
///     thread_seed(s, 2), ... in the order of their first draw: deterministic when they start
///     drawing one after another; when they start concurrently, which worker gets which k depends
///     on scheduling (the set of streams does not). For a per-thread stream that never depends on
///     scheduling, call manual_seed in the thread itself or pass a Generator explicitly.
/// Generators that already exist on other threads are not reseeded by manual_seed.
Generator& default_generator();
/// Seeds the calling thread's default generator with `seed`, and makes `seed` the base from which
/// the generators of threads created afterwards are derived (see default_generator).
void manual_seed(uint64_t seed);
/// The seed of the k-th thread generator derived from `seed`: `seed` itself for k = 0, otherwise
/// splitmix64(seed + k·0x9e3779b97f4a7c15), so nearby seeds and indices give unrelated streams.
uint64_t thread_seed(uint64_t seed, uint64_t k);

/// Uniform [low, high).
Tensor rand(const Shape& shape, DType dtype = DType::f32, Generator& gen = default_generator(),
            double low = 0.0, double high = 1.0);
/// Normal(mean, std).
Tensor randn(const Shape& shape, DType dtype = DType::f32, Generator& gen = default_generator(),
             double mean = 0.0, double std = 1.0);

/// Draws `num_samples` category indices (int64) from each row of `probs`: 1-D weights give
/// [num_samples], 2-D weights [rows, num_samples]. Weights are non-negative and need not sum to 1
/// (category c is drawn with probability w_c / Σ w); a zero weight is never drawn. Without
/// replacement a drawn category's weight is set to 0 for the row's later draws. No gradient.
/// std::invalid_argument on a negative, infinite or NaN weight, a row without a positive weight,
/// or num_samples above the categories (above a row's positive weights) without replacement.
Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement = false,
                   Generator& gen = default_generator());

}  // namespace tapegrad
