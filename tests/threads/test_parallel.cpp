// Intra-op threads (autograd/parallel.hpp): set_num_threads, parallel_for / parallel_reduce, and for
// every kernel family that runs in parallel, results at 1 thread bitwise equal to those at 2 and 3
// (the library's promise: no reduction depends on the thread count), gradients checked with 2
// threads. The tensors are large enough that the kernels do split (each test checks that 2 threads
// were set and, where it can, that the loop went parallel). Under `make test-tsan` the same tests
// run on the std::thread backend, so ThreadSanitizer checks every kernel's accesses.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <stdexcept>
#include <vector>

#include "autograd/autograd.hpp"
#include "autograd/blas.hpp"
#include "autograd/gemm_backend.hpp"
#include "autograd/kernels.hpp"
#include "autograd/parallel.hpp"
#include "datasets/datasets.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;

namespace {

/// Restores one thread when a test ends (also when it fails).
struct ThreadsScope {
  explicit ThreadsScope(int n) { set_num_threads(n); }
  ~ThreadsScope() { set_num_threads(1); }
};

/// Whether two tensors hold the same dtype, shape and bits (compared as the doubles they convert
/// to exactly: float32 → float64 is injective, and the sign of zero and NaN payloads are kept).
bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const std::vector<double> va = a.to_vector(), vb = b.to_vector();
  return std::memcmp(va.data(), vb.data(), va.size() * sizeof(double)) == 0;
}

/// n integers uniform in [lo, hi) as an int64 tensor.
Tensor random_ints(int64_t lo, int64_t hi, int64_t n, Generator& gen) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = lo + static_cast<int64_t>(gen.below(static_cast<uint64_t>(hi - lo)));
  return index_tensor(v);
}

/// fn() at 1 thread, then at 2 and 3: every tensor it returns must be bitwise the same.
void check_same_at_thread_counts(const std::function<std::vector<Tensor>()>& fn) {
  std::vector<Tensor> one;
  {
    ThreadsScope threads(1);
    one = fn();
  }
  for (int n : {2, 3}) {
    ThreadsScope threads(n);
    std::vector<Tensor> many = fn();
    REQUIRE(many.size() == one.size());
    for (size_t i = 0; i < one.size(); ++i) CHECK_MESSAGE(same_bits(one[i], many[i]), "result " << i << " at " << n << " threads");
  }
}

/// Fresh leaves with the values of `inputs`; fn's output, and each leaf's gradient after
/// backward with `grad_seed` (a fixed pseudo-random output gradient).
std::vector<Tensor> forward_backward(const std::vector<Tensor>& inputs, const std::function<Tensor(const std::vector<Tensor>&)>& fn) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) leaves.push_back(t.clone().requires_grad_());
  Tensor out = fn(leaves);
  Generator gen(99);
  Tensor g = randn(out.shape(), out.dtype(), gen);
  out.backward(g);
  std::vector<Tensor> result{out.detach()};
  for (const Tensor& l : leaves) result.push_back(l.grad());
  return result;
}

}  // namespace

TEST_CASE("set_num_threads sets the kernels' thread count (OpenBLAS stays at one) and rejects n < 1") {
  // at start: TAPEGRAD_NUM_THREADS, 1 when unset (as under ctest)
  const char* env = std::getenv("TAPEGRAD_NUM_THREADS");
  CHECK(get_num_threads() == (env && *env ? std::atoi(env) : 1));
  {
    ThreadsScope threads(3);
    CHECK(get_num_threads() == 3);
    CHECK(blas_num_threads() == 1);  // products split over tapegrad's threads instead
  }
  CHECK(get_num_threads() == 1);
  CHECK_THROWS_WITH_AS(set_num_threads(0), "tapegrad::set_num_threads: needs at least 1 thread, got 0",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(set_num_threads(-2), "tapegrad::set_num_threads: needs at least 1 thread, got -2",
                       std::invalid_argument);
  CHECK(get_num_threads() == 1);  // unchanged by the refused calls
}

TEST_CASE("parallel_for covers the range once, in whole grains, serially below the grain and when nested") {
  ThreadsScope threads(2);
  for (int64_t n : {0, 1, 999, 1000, 1001, 12345}) {
    std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
    std::atomic<int> calls{0}, parallel_calls{0};
    parallel::parallel_for(0, n, 1000, [&](int64_t lo, int64_t hi) {
      ++calls;
      if (parallel::in_parallel_region()) ++parallel_calls;
      CHECK(lo % 1000 == 0);  // ranges start on a grain boundary
      for (int64_t i = lo; i < hi; ++i) ++seen[static_cast<size_t>(i)];
    });
    for (auto& s : seen) CHECK(s.load() == 1);
    CHECK(calls.load() == (n == 0 ? 0 : n <= 1000 ? 1 : 2));
    CHECK(parallel_calls.load() == (n <= 1000 ? 0 : 2));
  }
  // nested: the inner loop runs on the thread of its outer range
  std::atomic<int> inner_calls{0};
  parallel::parallel_for(0, 4, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      parallel::parallel_for(0, 100000, 10, [&](int64_t a, int64_t b) {
        CHECK(a == 0);
        CHECK(b == 100000);
        ++inner_calls;
      });
  });
  CHECK(inner_calls.load() == 4);
}

TEST_CASE("parallel_for rethrows an exception thrown on any thread") {
  ThreadsScope threads(2);
  CHECK_THROWS_WITH_AS(parallel::parallel_for(0, 100, 10,
                                              [](int64_t lo, int64_t) {
                                                if (lo > 0) throw std::runtime_error("second range failed");
                                              }),
                       "second range failed", std::runtime_error);
  CHECK_FALSE(parallel::in_parallel_region());
}

TEST_CASE("parallel_reduce folds fixed chunks in order: the same bits at 1, 2 and 3 threads") {
  std::vector<float> v(100003);
  Generator gen(5);
  for (auto& x : v) x = static_cast<float>(gen.uniform() * 2 - 1) * 1e3f;
  auto total = [&] {
    return parallel::parallel_reduce(int64_t(0), static_cast<int64_t>(v.size()), 4096, 0.f,
                                     [&](int64_t lo, int64_t hi) {
                                       float s = 0;
                                       for (int64_t i = lo; i < hi; ++i) s += v[static_cast<size_t>(i)];
                                       return s;
                                     },
                                     [](float a, float b) { return a + b; });
  };
  float one = 0;
  {
    ThreadsScope threads(1);
    one = total();
  }
  for (int n : {2, 3}) {
    ThreadsScope threads(n);
    const float many = total();
    CHECK(std::memcmp(&one, &many, sizeof one) == 0);
  }
}

TEST_CASE("elementwise and fused activation kernels give the same bits at 1, 2 and 3 threads") {
  Generator gen(1);
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor a = randn({300, 400}, dt, gen), b = randn({300, 400}, dt, gen), row = randn({400}, dt, gen);
    check_same_at_thread_counts([&] {
      return std::vector<Tensor>{add(a, b), mul(a, row), div(a, 3.0), exp(a), tanh(a), sigmoid(a), relu(a),
                                 gelu(a), gelu(a, GeluApproximate::tanh), where(gt(a, b), a, b),
                                 masked_fill(a, lt(row, 0.0), 0.5), expand(row, {300, 400})};
    });
    // and their gradients (the fused backward kernels)
    check_same_at_thread_counts([&] {
      return forward_backward({a, b}, [](const std::vector<Tensor>& in) {
        return add(mul(gelu(in[0]), sigmoid(in[1])), tanh(gelu(in[1], GeluApproximate::tanh)));
      });
    });
  }
}

TEST_CASE("reductions give the same bits at 1, 2 and 3 threads") {
  Generator gen(2);
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = randn({700, 300}, dt, gen), flat = randn({250001}, dt, gen);
    check_same_at_thread_counts([&] {
      return std::vector<Tensor>{sum(flat), sum(x), sum(x, {0}), sum(x, {1}), mean(x, {0}), max(x, {0}), max(x, {1}),
                                 min(flat), logsumexp(x, {1}), sum(reshape(x, {7, 100, 300}), {1})};
    });
  }
  Tensor ints = random_ints(-1000, 1000, 300000, gen);
  check_same_at_thread_counts([&] { return std::vector<Tensor>{sum(ints), max(ints)}; });
}

TEST_CASE("softmax, log_softmax and cross-entropy rows give the same bits at 1, 2 and 3 threads") {
  Generator gen(3);
  Tensor logits = randn({512, 1000}, DType::f32, gen);
  Tensor targets = random_ints(0, 1000, 512, gen);
  Tensor strided = randn({64, 10, 100}, DType::f64, gen);  // softmax over axis 1: inner > 1
  check_same_at_thread_counts([&] {
    return std::vector<Tensor>{softmax(strided, 1), log_softmax(strided, 1)};
  });
  check_same_at_thread_counts([&] {
    return forward_backward({logits}, [](const std::vector<Tensor>& in) { return softmax(in[0], -1); });
  });
  check_same_at_thread_counts([&] {
    return forward_backward({logits}, [](const std::vector<Tensor>& in) { return log_softmax(in[0], -1); });
  });
  check_same_at_thread_counts([&] {
    return forward_backward({logits}, [&](const std::vector<Tensor>& in) {
      return F::cross_entropy(in[0], targets, F::Reduction::none);
    });
  });
  check_same_at_thread_counts([&] {  // the non-plain path: label smoothing
    return forward_backward({logits}, [&](const std::vector<Tensor>& in) {
      return F::cross_entropy(in[0], targets, F::CrossEntropyOptions().label_smoothing(0.1));
    });
  });
}

TEST_CASE("layer and RMS norm give the same bits at 1, 2 and 3 threads, weight and bias gradients included") {
  Generator gen(6);
  for (DType dt : {DType::f32, DType::f64}) {
    // 203 rows of 300: several grains of rows, and chunks of the weight gradient's partial sums
    // with a partial last one
    Tensor x = randn({7, 29, 300}, dt, gen), w = randn({300}, dt, gen), b = randn({300}, dt, gen);
    check_same_at_thread_counts([&] {
      return forward_backward({x, w, b}, [](const std::vector<Tensor>& in) {
        return F::layer_norm(in[0], {300}, in[1], in[2]);
      });
    });
    check_same_at_thread_counts([&] {
      return forward_backward({x, w}, [](const std::vector<Tensor>& in) { return F::rms_norm(in[0], {300}, in[1]); });
    });
  }
}

TEST_CASE("attention gives the same bits at 1, 2 and 3 threads: heads in parallel, each on one thread") {
  Generator gen(5);
  for (DType dt : {DType::f32, DType::f64}) {
    // 6 batch·heads of 40 queries; tiles of 16 leave partial tiles; the products stay under the
    // size that splits them, so every result is bitwise the same across counts
    Tensor q = randn({3, 2, 40, 8}, dt, gen), k = randn({3, 2, 40, 8}, dt, gen), v = randn({3, 2, 40, 8}, dt, gen);
    Tensor mask = randn({3, 1, 40, 40}, dt, gen);
    Tensor qkv = randn({3, 40, 3 * 16}, dt, gen);
    const auto tiles = F::AttentionOptions().tiles(16, 16);
    check_same_at_thread_counts([&] {
      return forward_backward({q, k, v, mask}, [&](const std::vector<Tensor>& in) {
        return F::scaled_dot_product_attention(in[0], in[1], in[2], F::AttentionOptions(tiles).mask(in[3]));
      });
    });
    check_same_at_thread_counts([&] {
      return forward_backward({qkv}, [&](const std::vector<Tensor>& in) {
        return F::qkv_packed_attention(in[0], 2, F::AttentionOptions(tiles).causal(true));
      });
    });
    check_same_at_thread_counts([&] {  // dropout: the factors come from a counter-based stream
      Generator drop(9);
      return forward_backward({q, k, v}, [&](const std::vector<Tensor>& in) {
        return F::scaled_dot_product_attention(in[0], in[1], in[2], F::AttentionOptions(tiles).dropout(0.25, drop));
      });
    });
  }
}

TEST_CASE("conv2d, im2col / col2im and pooling give the same bits at 1, 2 and 3 threads") {
  Generator gen(4);
  for (DType dt : {DType::f32, DType::f64}) {
    // 20 images: three groups of the im2col weight gradient's partial sums (8, 8, 4); at 8 -> 16
    // channels the automatic rule runs Winograd (its own thread test is in test_conv_winograd.cpp)
    Tensor x = randn({20, 8, 16, 16}, dt, gen), w = randn({16, 8, 3, 3}, dt, gen), b = randn({16}, dt, gen);
    check_same_at_thread_counts([&] {
      return forward_backward({x, w, b}, [](const std::vector<Tensor>& in) {
        return F::conv2d(in[0], in[1], in[2], 1, 1);
      });
    });
    Tensor big = randn({8, 32, 32, 32}, dt, gen);
    check_same_at_thread_counts([&] {
      return forward_backward({big}, [](const std::vector<Tensor>& in) {
        return add(F::max_pool2d(in[0], 2), F::avg_pool2d(in[0], 2));
      });
    });
    check_same_at_thread_counts([&] {
      return forward_backward({big}, [](const std::vector<Tensor>& in) { return F::max_pool2d(in[0], 3, 2, 1); });
    });
    check_same_at_thread_counts([&] {
      Tensor cols = F::im2col(big, 3, 1, 1);
      return std::vector<Tensor>{cols, F::col2im(cols, big.shape(), 3, 1, 1)};
    });
  }
}

TEST_CASE("matrix products: bitwise repeatable at a fixed thread count, within float rounding across counts") {
  // Large products split C into bands over tapegrad's threads (by rows when tall, by columns when
  // wide), one single-threaded OpenBLAS or libxsmm call each. The partition is fixed at a given
  // count, so a product repeats bitwise; across counts a band's last rows may go through another
  // register block than unsplit and differ in the last bits. All four transpose combinations,
  // float32 and float64, accumulation into C (beta = 1), sizes that leave a partial band; float32
  // A·Bᵀ at 32 × 128 × 3136 and 24 × 200 × 1024 runs on libxsmm where it is built (the rule of
  // kernels::gemm_choice), banded by columns, each band transposed (kernels::nt_transposed).
  struct Case { int64_t m, n, k; };
  for (DType dt : {DType::f32, DType::f64})
    for (Case c : {Case{517, 200, 96}, Case{40, 701, 300}, Case{768, 384, 128}, Case{32, 128, 3136}, Case{24, 200, 1024}})
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          CAPTURE(c.m);
          CAPTURE(c.n);
          CAPTURE(ta);
          CAPTURE(tb);
          if (c.m <= 32 && dt == DType::f32 && !ta && tb && libxsmm_available())
            CHECK(kernels::gemm_choice(dt, c.m, c.n, c.k, ta, tb, 1.0) == GemmBackend::libxsmm);
          Generator gen(6);
          Tensor a = randn(ta ? Shape{c.k, c.m} : Shape{c.m, c.k}, dt, gen);
          Tensor b = randn(tb ? Shape{c.n, c.k} : Shape{c.k, c.n}, dt, gen);
          Tensor c0 = randn({c.m, c.n}, dt, gen);
          auto products = [&] {
            Tensor acc = c0.clone();
            if (dt == DType::f32)
              kernels::gemm_raw(a.data<float>(), b.data<float>(), acc.mutable_data<float>(), c.m, c.n, c.k, ta, tb, 1.0f);
            else
              kernels::gemm_raw(a.data<double>(), b.data<double>(), acc.mutable_data<double>(), c.m, c.n, c.k, ta, tb, 1.0);
            return std::vector<Tensor>{gemm(a, b, ta, tb), acc};
          };
          std::vector<Tensor> one;
          {
            ThreadsScope threads(1);
            one = products();
          }
          for (int n : {2, 3}) {
            ThreadsScope threads(n);
            const std::vector<Tensor> first = products(), second = products();
            for (size_t i = 0; i < one.size(); ++i) {
              CHECK(same_bits(first[i], second[i]));
              // each element: a k-term dot product, rounded differently at most
              const double bound = (dt == DType::f32 ? 1e-6 : 1e-14) * static_cast<double>(c.k) * 4;
              CHECK(max(abs(sub(first[i], one[i]))).item() <= bound * (1 + max(abs(one[i])).item()));
            }
          }
        }
}

TEST_CASE("an UnsplitProducts scope keeps products on one call: the same bits at 1, 2 and 3 threads") {
  Generator gen(7);
  Tensor a = randn({768, 128}, DType::f32, gen), b = randn({384, 128}, DType::f32, gen);
  check_same_at_thread_counts([&] {
    CHECK(parallel::products_may_split() == (get_num_threads() > 1));
    parallel::UnsplitProducts unsplit;
    CHECK_FALSE(parallel::products_may_split());
    return std::vector<Tensor>{gemm(a, b, false, true)};
  });
  CHECK_FALSE(parallel::products_may_split());  // one thread again
}

TEST_CASE("optimizer updates give the same bits at 1, 2 and 3 threads") {
  Generator gen(7);
  Tensor w0 = randn({300, 400}, DType::f32, gen), g0 = randn({300, 400}, DType::f32, gen);
  using Make = std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>;
  std::vector<Make> makers{
      [](std::vector<Tensor> p) { return std::make_unique<optim::Adam>(std::move(p), optim::AdamOptions(1e-2)); },
      [](std::vector<Tensor> p) {
        return std::make_unique<optim::Adam>(std::move(p), optim::AdamOptions(1e-2).weight_decay(0.1).amsgrad(true));
      },
      [](std::vector<Tensor> p) { return std::make_unique<optim::AdamW>(std::move(p)); },
      [](std::vector<Tensor> p) {
        return std::make_unique<optim::SGD>(std::move(p), optim::SGDOptions(0.1).momentum(0.9).nesterov(true));
      },
      [](std::vector<Tensor> p) {
        return std::make_unique<optim::RMSprop>(std::move(p), optim::RMSpropOptions(1e-2).momentum(0.5).centered(true));
      },
      [](std::vector<Tensor> p) { return std::make_unique<optim::Adagrad>(std::move(p), optim::AdagradOptions(0.1)); },
  };
  for (size_t k = 0; k < makers.size(); ++k) {
    CAPTURE(k);
    check_same_at_thread_counts([&] {
      Tensor w = w0.clone().requires_grad_();
      auto opt = makers[k]({w});
      for (int step = 0; step < 3; ++step) {
        w.set_grad(mul(g0, static_cast<double>(step + 1)));
        opt->step();
      }
      return std::vector<Tensor>{w.detach()};
    });
  }
}

TEST_CASE("the batch gather gives the same batch at 1, 2 and 3 threads") {
  Generator gen(8);
  std::vector<uint8_t> pixels(2000 * 784);
  for (auto& p : pixels) p = static_cast<uint8_t>(gen.below(256));
  auto images = std::make_shared<datasets::ImageDataset>(pixels, Shape{1, 28, 28}, random_ints(0, 10, 2000, gen));
  Tensor table = randn({2000, 784}, DType::f32, gen);
  datasets::TensorDataset tensors(table, random_ints(0, 10, 2000, gen));
  std::vector<int64_t> idx;
  for (int i = 0; i < 256; ++i) idx.push_back(static_cast<int64_t>(gen.below(2000)));
  check_same_at_thread_counts([&] {
    datasets::Batch a = images->get(idx), b = tensors.get(idx);
    return std::vector<Tensor>{a.x, a.y, b.x, b.y};
  });
  // and the gather is right: row r of the batch is sample idx[r]
  datasets::Batch b = tensors.get(idx);
  CHECK(same_bits(b.x, index_select(table, 0, index_tensor(idx))));
  ThreadsScope threads(2);
  datasets::Batch b2 = tensors.get(idx);
  for (int r : {0, 1, 128, 255}) CHECK(same_bits(slice(b2.x, 0, r, r + 1), slice(table, 0, idx[static_cast<size_t>(r)], idx[static_cast<size_t>(r)] + 1)));
}

TEST_CASE("gradcheck passes with 2 threads on tensors large enough to split") {
  ThreadsScope threads(2);
  Generator gen(9);
  auto opts = GradcheckOptions().set_fast_mode(true);
  Tensor x = randn({200, 400}, DType::f64, gen).requires_grad_(), y = randn({200, 400}, DType::f64, gen).requires_grad_();
  Tensor row = randn({400}, DType::f64, gen).requires_grad_();
  auto elementwise = [](const std::vector<Tensor>& in) {
    return sum(mul(add(gelu(in[0]), sigmoid(in[1])), in[2]));
  };
  auto r = gradcheck(elementwise, {x, y, row}, opts);
  CHECK_MESSAGE(r.ok, r.message);
  auto rows = [](const std::vector<Tensor>& in) { return sum(mul(log_softmax(in[0], -1), in[1])); };
  r = gradcheck(rows, {x, y}, opts);
  CHECK_MESSAGE(r.ok, r.message);
  Tensor img = randn({4, 8, 24, 24}, DType::f64, gen).requires_grad_(), w = randn({6, 8, 3, 3}, DType::f64, gen).requires_grad_();
  Tensor b = randn({6}, DType::f64, gen).requires_grad_();
  auto conv = [](const std::vector<Tensor>& in) {
    return sum(F::max_pool2d(relu(F::conv2d(in[0], in[1], in[2], 1, 1)), 2));
  };
  r = gradcheck(conv, {img, w, b}, opts);
  CHECK_MESSAGE(r.ok, r.message);
  Tensor targets = random_ints(0, 400, 200, gen);
  auto ce = [&](const std::vector<Tensor>& in) { return F::cross_entropy(in[0], targets); };
  r = gradcheck(ce, {x}, opts);
  CHECK_MESSAGE(r.ok, r.message);
}
