// kernels::gemm_raw on OpenBLAS and on libxsmm, side by side, at the products tapegrad's training runs
// make: the seed MLP (784 → 128 → 10, batch 32 and 256; nn::Linear's [out, in] weights) and the baby
// GPT (batch 12 × context 64 = 768 rows, width 128, attention [12·4 heads, 64, 32]). Every product
// is row-major C[m, n] = op(A)·op(B) (ta, tb: transposed operands, as gemm_raw takes them), one
// thread. The per-shape rule of gemm_choice comes from this table; run both backends interleaved:
//
//   build/bench/bench_gemm_shapes --benchmark_repetitions=7 --benchmark_enable_random_interleaving=true
//       --benchmark_report_aggregates_only=true --benchmark_min_time=0.05   (one command line)
//
// and compare the CPU-time medians (the "auto" rows show what gemm_raw picks).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "autograd/gemm_backend.hpp"
#include "autograd/kernels.hpp"

using namespace tapegrad;

namespace {

struct Product {
  const char* name;
  int64_t m, n, k;
  bool ta, tb;
};

// clang-format off
const std::vector<Product> kProducts = {
  // seed MLP, nn::Linear: y = x·Wᵀ, dX = g·W, dW = gᵀ·x (the small CNN's 3136 → 128 layer below)
  {"mlp32 fc1 fwd x.W1t", 32, 128, 784, false, true},
  {"mlp32 fc1 dX g.W1", 32, 784, 128, false, false},
  {"mlp32 fc1 dW gt.x", 128, 784, 32, true, false},
  {"mlp32 fc2 fwd h.W2t", 32, 10, 128, false, true},
  {"mlp32 fc2 dX g.W2", 32, 128, 10, false, false},
  {"mlp32 fc2 dW gt.h", 10, 128, 32, true, false},
  {"mlp256 fc1 fwd x.W1t", 256, 128, 784, false, true},
  {"mlp256 fc1 dX g.W1", 256, 784, 128, false, false},
  {"mlp256 fc1 dW gt.x", 128, 784, 256, true, false},
  {"cnn32 fc1 fwd x.W1t", 32, 128, 3136, false, true},
  // seed MLP, matmul form (W [784, 128]): y = x·W, dW = xᵀ·g
  {"mlp32 matmul fwd x.W", 32, 128, 784, false, false},
  {"mlp32 matmul dW xt.g", 784, 128, 32, true, false},
  {"mlp256 matmul fwd x.W", 256, 128, 784, false, false},
  // baby GPT: linear layers over 768 rows
  {"gpt qkv fwd", 768, 384, 128, false, true},
  {"gpt qkv dX", 768, 128, 384, false, false},
  {"gpt qkv dW", 384, 128, 768, true, false},
  {"gpt proj fwd", 768, 128, 128, false, true},
  {"gpt proj dX", 768, 128, 128, false, false},
  {"gpt proj dW", 128, 128, 768, true, false},
  {"gpt fc fwd", 768, 512, 128, false, true},
  {"gpt fc dX", 768, 128, 512, false, false},
  {"gpt fc dW", 512, 128, 768, true, false},
  {"gpt mlpproj fwd", 768, 128, 512, false, true},
  {"gpt mlpproj dX", 768, 512, 128, false, false},
  {"gpt mlpproj dW", 128, 512, 768, true, false},
  {"gpt lm_head fwd", 768, 113, 128, false, true},
  {"gpt lm_head dX", 768, 128, 113, false, false},
  {"gpt lm_head dW", 113, 128, 768, true, false},
  // baby GPT attention, one head: S = Q·Kᵀ, O = P·V, dV = Pᵀ·dO, dP = dO·Vᵀ, dQ = dS·K
  {"gpt attn q.kt", 64, 64, 32, false, true},
  {"gpt attn p.v", 64, 32, 64, false, false},
  {"gpt attn pt.dO", 64, 32, 64, true, false},
  // probes around the rule's bounds (not products of the two models)
  {"probe", 32, 32, 32, false, true},
  {"probe", 32, 512, 512, false, true},
  {"probe", 1024, 32, 1024, false, true},
  {"probe", 64, 256, 256, false, true},
  {"probe", 32, 10, 3136, false, true},
  {"probe", 128, 10, 128, false, true},
  {"probe", 32, 64, 32, false, true},
  {"probe", 16, 64, 64, false, true},
  {"probe", 8, 128, 128, false, true},
  {"probe", 64, 64, 64, false, true},
  {"probe", 128, 128, 32, false, true},
  {"probe", 256, 128, 64, false, true},
  {"probe", 128, 128, 128, false, false},
  {"probe", 256, 256, 128, false, false},
  {"probe", 512, 128, 128, false, false},
  {"probe", 768, 256, 128, false, false},
  {"probe", 256, 256, 64, true, false},
  {"probe", 768, 512, 64, true, false},
  {"probe", 64, 64, 256, true, false},
  {"probe", 256, 256, 256, false, false},
};
// clang-format on

template <class T>
void BM_Gemm(benchmark::State& state, Product p, GemmBackend backend) {
  std::vector<T> a(static_cast<size_t>(p.m * p.k)), b(static_cast<size_t>(p.k * p.n)),
      c(static_cast<size_t>(p.m * p.n));
  for (size_t i = 0; i < a.size(); ++i) a[i] = T(static_cast<double>(i % 17) * 0.01 - 0.08);
  for (size_t i = 0; i < b.size(); ++i) b[i] = T(static_cast<double>(i % 13) * 0.02 - 0.12);
  if (backend == GemmBackend::libxsmm && !kernels::gemm_supported_by_libxsmm(p.m, p.n, p.k, p.ta, p.tb, 0.0)) {
    state.SkipWithError("libxsmm: not in this build or not for this product");
    return;
  }
  for (auto _ : state) {
    kernels::gemm_raw_on<T>(backend, a.data(), b.data(), c.data(), p.m, p.n, p.k, p.ta, p.tb, T(0));
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * p.m * p.n * p.k * static_cast<double>(state.iterations()) * 1e-9,
                                                benchmark::Counter::kIsRate);
  if (backend == GemmBackend::automatic)
    state.SetLabel(gemm_backend_name(kernels::gemm_choice(dtype_of<T>(), p.m, p.n, p.k, p.ta, p.tb, 0.0)));
}

std::string product_name(const char* dtype, const Product& p) {
  return std::string("gemm/") + dtype + "/" + p.name + "/" + std::to_string(p.m) + "x" + std::to_string(p.n) + "x" +
         std::to_string(p.k) + (p.ta ? "T" : "N") + (p.tb ? "T" : "N");
}

int register_products() {
  set_gemm_backend(GemmBackend::automatic);  // the "auto" rows show the rule, whatever TAPEGRAD_GEMM says
  benchmark::AddCustomContext("blas_core", blas_core_name());
  benchmark::AddCustomContext("libxsmm", libxsmm_available() ? "yes" : "no (libxsmm rows fail as skipped)");
  for (const Product& p : kProducts)
    for (GemmBackend backend : {GemmBackend::openblas, GemmBackend::libxsmm, GemmBackend::automatic})
      benchmark::RegisterBenchmark((product_name("f32", p) + "/" + gemm_backend_name(backend)).c_str(), BM_Gemm<float>,
                                   p, backend)
          ->Unit(benchmark::kMicrosecond);
  // float64 for a few: the MLP's forward and weight gradient, and the GPT backward products.
  for (const Product& p : kProducts) {
    const std::string name = p.name;
    if (name != "mlp32 fc1 fwd x.W1t" && name != "mlp32 fc1 dW gt.x" && name != "gpt qkv dX" && name != "gpt qkv dW" && name != "gpt attn p.v") continue;
    for (GemmBackend backend : {GemmBackend::openblas, GemmBackend::libxsmm})
      benchmark::RegisterBenchmark((product_name("f64", p) + "/" + gemm_backend_name(backend)).c_str(), BM_Gemm<double>,
                                   p, backend)
          ->Unit(benchmark::kMicrosecond);
  }
  return 0;
}
[[maybe_unused]] const int registered = register_products();

}  // namespace
