// The default generator is per thread (autograd/random.hpp): threads that initialise layers or
// draw random tensors concurrently share no state (clean under ThreadSanitizer, `make test-tsan`),
// and each thread's stream follows the documented seeding rule.
#include <doctest/doctest.h>

#include <algorithm>
#include <latch>
#include <thread>
#include <vector>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;

namespace {

/// What one worker draws from its default generator: a Linear layer's parameters, then randn; and
/// the layer's output on ones (a gemm, so OpenBLAS runs on several threads at once too).
struct Draws {
  std::vector<double> weight, bias, normal, out;
  friend bool operator==(const Draws&, const Draws&) = default;
};

Draws draw(Generator& gen = default_generator()) {
  nn::Linear layer(64, 32, gen);
  std::vector<double> normal = randn({1 << 14}, DType::f64, gen).to_vector();
  return {layer.weight.to_vector(), layer.bias.to_vector(), normal, layer(ones({4, 64})).to_vector()};
}

/// The same draws from a fresh Generator(seed), on the calling thread.
Draws expected(uint64_t seed) {
  Generator g(seed);
  return draw(g);
}

}  // namespace

TEST_CASE("threads drawing concurrently each get their own stream, derived from manual_seed") {
  manual_seed(11);
  constexpr int kThreads = 4;
  std::vector<Draws> got(kThreads);
  std::vector<std::thread> workers;
  std::latch start(kThreads);  // all draw at once, so that a shared generator would overlap
  for (int i = 0; i < kThreads; ++i)
    workers.emplace_back([&got, &start, i] {
      start.arrive_and_wait();
      got[static_cast<size_t>(i)] = draw();
    });
  for (auto& w : workers) w.join();
  // Which worker drew first (k = 1) depends on scheduling; the set of streams does not.
  std::vector<Draws> want;
  for (uint64_t k = 1; k <= kThreads; ++k) want.push_back(expected(thread_seed(11, k)));
  for (const Draws& d : got) CHECK(std::count(want.begin(), want.end(), d) == 1);
  for (int i = 0; i < kThreads; ++i)
    for (int j = i + 1; j < kThreads; ++j) CHECK_FALSE(got[static_cast<size_t>(i)] == got[static_cast<size_t>(j)]);
  // The main thread's stream is untouched by the workers: exactly Generator(11), as before threads.
  CHECK(draw() == expected(11));
}

TEST_CASE("threads started one after another get k = 1, 2, ... in order") {
  manual_seed(5);
  for (uint64_t k = 1; k <= 3; ++k) {
    Draws d;
    std::thread([&d] { d = draw(); }).join();
    CHECK(d == expected(thread_seed(5, k)));
  }
  manual_seed(5);  // resets the count
  Draws again;
  std::thread([&again] { again = draw(); }).join();
  CHECK(again == expected(thread_seed(5, 1)));
}

TEST_CASE("a thread that calls manual_seed itself is reproducible whatever the scheduling") {
  constexpr int kThreads = 3;
  std::vector<Draws> got(kThreads);
  std::vector<std::thread> workers;
  std::latch start(kThreads);
  for (int i = 0; i < kThreads; ++i)
    workers.emplace_back([&got, &start, i] {
      start.arrive_and_wait();
      manual_seed(100 + static_cast<uint64_t>(i));
      got[static_cast<size_t>(i)] = draw();
    });
  for (auto& w : workers) w.join();
  for (int i = 0; i < kThreads; ++i) CHECK(got[static_cast<size_t>(i)] == expected(100 + static_cast<uint64_t>(i)));
}

TEST_CASE("thread_seed: k = 0 is the seed itself, other indices give distinct seeds") {
  CHECK(thread_seed(42, 0) == 42);
  CHECK(thread_seed(42, 1) != 42);
  CHECK(thread_seed(42, 1) != thread_seed(42, 2));
  CHECK(thread_seed(42, 1) != thread_seed(43, 1));
}
