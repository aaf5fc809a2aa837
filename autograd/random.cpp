#include "autograd/random.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>
#include <sstream>

#include "autograd/kernels.hpp"

namespace tapegrad {

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = uniform();
  double u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2.0 * M_PI * u2);
  has_spare_ = true;
  return r * std::cos(2.0 * M_PI * u2);
}

std::string Generator::state() const {
  std::ostringstream os;
  os << engine_ << ' ' << has_spare_ << ' ';
  os.precision(17);
  os << spare_;
  return os.str();
}

void Generator::set_state(const std::string& s) {
  std::istringstream is(s);
  std::mt19937_64 e;
  bool has = false;
  double spare = 0;
  if (!(is >> e >> has >> spare)) throw std::invalid_argument("tapegrad::Generator::set_state: malformed state");
  engine_ = e;
  has_spare_ = has;
  spare_ = spare;
}

uint64_t thread_seed(uint64_t seed, uint64_t k) {
  if (k == 0) return seed;
  uint64_t z = seed + k * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

namespace {
// The base seed and the index of the next thread generator: touched once per thread (its first
// draw) and by manual_seed, never per draw.
std::mutex g_seed_mutex;
uint64_t g_seed = 0x5eed;  // Generator's default seed
uint64_t g_next = 0;

Generator next_thread_generator() {
  std::lock_guard<std::mutex> lock(g_seed_mutex);
  return Generator(thread_seed(g_seed, g_next++));
}
}  // namespace

Generator& default_generator() {
  thread_local Generator g = next_thread_generator();
  return g;
}

void manual_seed(uint64_t seed) {
  Generator& g = default_generator();  // created first: its creation must not consume the new count
  {
    std::lock_guard<std::mutex> lock(g_seed_mutex);
    g_seed = seed;
    g_next = 1;  // this thread is k = 0
  }
  g = Generator(seed);
}

Tensor rand(const Shape& shape, DType dtype, Generator& gen, double low, double high) {
  if (!(low <= high))
    throw std::invalid_argument("tapegrad::rand: needs low <= high, got low=" + std::to_string(low) +
                                " high=" + std::to_string(high));
  Tensor t = Tensor::empty(shape, dtype);
  kernels::dispatch(dtype, "rand", [&](auto z) {
    using T = decltype(z);
    T* d = t.mutable_data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) d[i] = static_cast<T>(low + (high - low) * gen.uniform());
  });
  return t;
}

Tensor randn(const Shape& shape, DType dtype, Generator& gen, double mean, double std) {
  if (!(std >= 0)) throw std::invalid_argument("tapegrad::randn: needs std >= 0, got " + std::to_string(std));
  Tensor t = Tensor::empty(shape, dtype);
  kernels::dispatch(dtype, "randn", [&](auto z) {
    using T = decltype(z);
    T* d = t.mutable_data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) d[i] = static_cast<T>(mean + std * gen.normal());
  });
  return t;
}

Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement, Generator& gen) {
  kernels::check_defined("multinomial", probs);
  if (!is_floating(probs.dtype()))
    throw DTypeError(std::string("tapegrad::multinomial: weights must be floating, got ") + dtype_name(probs.dtype()) +
                     " " + to_string(probs.shape()));
  if (probs.dim() != 1 && probs.dim() != 2)
    throw ShapeError("tapegrad::multinomial: weights must be 1-D or 2-D, got shape " + to_string(probs.shape()));
  const int64_t rows = probs.dim() == 2 ? probs.size(0) : 1, n = probs.size(-1);
  if (n == 0) throw ShapeError("tapegrad::multinomial: no categories in weights of shape " + to_string(probs.shape()));
  if (num_samples <= 0)
    throw std::invalid_argument("tapegrad::multinomial: num_samples must be positive, got " + std::to_string(num_samples));
  if (!replacement && num_samples > n)
    throw std::invalid_argument("tapegrad::multinomial: cannot draw " + std::to_string(num_samples) + " samples from " +
                                std::to_string(n) + " categories without replacement");
  const std::vector<double> w = probs.to_vector();
  for (int64_t r = 0; r < rows; ++r) {
    int64_t positive = 0;
    for (int64_t c = 0; c < n; ++c) {
      const double v = w[static_cast<size_t>(r * n + c)];
      if (!std::isfinite(v) || v < 0)
        throw std::invalid_argument("tapegrad::multinomial: weight " + std::to_string(v) + " at row " + std::to_string(r) +
                                    ", category " + std::to_string(c) + " (weights must be finite and non-negative)");
      positive += v > 0;
    }
    if (positive == 0)
      throw std::invalid_argument("tapegrad::multinomial: row " + std::to_string(r) + " of weights has no positive weight");
    if (!replacement && num_samples > positive)
      throw std::invalid_argument("tapegrad::multinomial: cannot draw " + std::to_string(num_samples) +
                                  " samples without replacement from row " + std::to_string(r) + ", which has only " +
                                  std::to_string(positive) + " positive weights");
  }
  Tensor out = Tensor::empty(probs.dim() == 2 ? Shape{rows, num_samples} : Shape{num_samples}, DType::i64);
  int64_t* po = out.mutable_data<int64_t>();
  std::vector<double> weights(static_cast<size_t>(n)), cumulative(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(w.begin() + r * n, n, weights.begin());
    for (int64_t s = 0; s < num_samples; ++s) {
      std::partial_sum(weights.begin(), weights.end(), cumulative.begin());
      // The first category whose running total exceeds u·total: a zero weight never does.
      const double u = gen.uniform() * cumulative.back();
      int64_t c = std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin();
      while (c >= n || weights[static_cast<size_t>(c)] == 0) --c;  // rounding at the top end only
      po[r * num_samples + s] = c;
      if (!replacement) weights[static_cast<size_t>(c)] = 0;
    }
  }
  return out;
}

}  // namespace tapegrad
