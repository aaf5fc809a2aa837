#pragma once
/// \file random.hpp
/// One seedable generator serves every random thing in tapegrad (rand, randn, initializers,
/// dropout, shuffling), so a run with the same seed is bitwise reproducible.
#include <cstdint>
#include <random>

#include "autograd/tensor.hpp"

namespace tapegrad {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : engine_(seed) {}
  void seed(uint64_t s) { engine_.seed(s); }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(engine_() >> 11) * (1.0 / 9007199254740992.0); }
  /// Standard normal (Box–Muller, implementation-independent).
  double normal();
  /// Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return engine_() % n; }
  std::mt19937_64& engine() { return engine_; }
  /// The full state, for checkpoints (std::mt19937_64's textual form).
  std::string state() const;
  void set_state(const std::string& s);

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

/// The process-wide default generator.
Generator& default_generator();
/// Seeds the default generator.
void manual_seed(uint64_t seed);

/// Uniform [low, high).
Tensor rand(const Shape& shape, DType dtype = DType::f32, Generator& gen = default_generator(),
            double low = 0.0, double high = 1.0);
/// Normal(mean, std).
Tensor randn(const Shape& shape, DType dtype = DType::f32, Generator& gen = default_generator(),
             double mean = 0.0, double std = 1.0);

}  // namespace tapegrad
