// Issue 15's question for the seed MLP at batch 32: can the Adam update be hidden behind the weight
// gradient's product, or made cheaper, so that a training step gets near its compute limit? The
// step's largest non-GEMM part is Adam over fc1's 128 × 784 weight; this suite measures it next to
// the product dW = gᵀ·x (128 × 784 × 32) that precedes it in every step, and two fusions of the two:
//
//   BM_Fc1WeightGrad            tapegrad's product (kernels::gemm_raw: libxsmm here, OpenBLAS without)
//   BM_Fc1WeightGradOwnKernel   a plain AVX2 kernel (4 × 24 register tile, K = 32 in registers)
//   BM_Fc1Adam                  optim::Adam::step on the 100,352 weights (what training runs)
//   BM_Fc1AdamIntrinsics        the same update as an AVX2 loop here (the fusions' Adam)
//   BM_Fc1AdamMemoryFloor       that loop's loads, stores and FMAs with no square root and no
//                               division: the memory traffic alone (not Adam; a floor)
//   BM_Fc1WeightGradThenAdam    the product, then optim::Adam::step (the step as it is)
//   BM_Fc1FusedBand             the AVX2 kernel one band of 4 weight rows at a time into an L1
//                               buffer, Adam over that band at once (the gradient never reaches L2)
//   BM_Fc1FusedTile             Adam applied to each 4 × 24 tile in registers as it is computed
//
// Each iteration first walks a 1 MiB buffer, so the weights and Adam's state come from L3 as in a
// training step (whose working set, 1.7 MB, is over the 512 KiB L2 of the machines we measured on),
// then times the work alone (manual timing). The fused variants are experiments, not library code.
//
//   build/bench/bench_adam_fusion --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// README ("What stands between these numbers and the limits") quotes the medians; on the AMD EPYC
// (Zen 3, AVX2) the fusions saved nothing and the memory floor was within 10% of Adam itself.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <chrono>
#include <cmath>
#include <vector>

#include "autograd/autograd.hpp"
#include "autograd/kernels.hpp"
#include "optim/adam.hpp"

using namespace tapegrad;

namespace {

constexpr int64_t kBatch = 32, kOut = 128, kIn = 784;

/// The product's operands and Adam's state, float32, filled once.
struct Fc1 {
  Tensor g = randn({kBatch, kOut}, DType::f32), x = randn({kBatch, kIn}, DType::f32);
  Tensor w = randn({kOut, kIn}, DType::f32).requires_grad_(true);
  Tensor dw = randn({kOut, kIn}, DType::f32);  // a gradient of normal size, so that m and v stay normal numbers
  std::vector<float> m = std::vector<float>(kOut * kIn, 0.01f), v = std::vector<float>(kOut * kIn, 1e-4f);
  std::vector<float> evict = std::vector<float>(1 << 18, 1.0f);  // 1 MiB
  optim::Adam adam{{w}, optim::AdamOptions(1e-3)};

  Fc1() { w.set_grad(dw); }
  /// Pushes the weights and state out of L2 and brings the product's inputs back, as a step leaves them.
  void settle() {
    for (size_t i = 0; i < evict.size(); i += 16) evict[i] += 1.0f;
    float s = 0;
    for (const Tensor* t : {&g, &x}) {
      const float* p = t->data<float>();
      for (int64_t i = 0; i < t->numel(); i += 16) s += p[i];
    }
    benchmark::DoNotOptimize(s);
  }
  void product() {
    kernels::gemm_raw(g.data<float>(), x.data<float>(), dw.mutable_data<float>(), kOut, kIn, kBatch, true, false, 0.0f);
  }
};

template <class Work>
void timed(benchmark::State& state, Fc1& f, Work&& work) {
  for (auto _ : state) {
    f.settle();
    const auto t0 = std::chrono::steady_clock::now();
    work();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

#ifdef __AVX2__
/// Adam's constants for one step (bias corrections folded in, as optim::Adam does).
struct AdamConstants {
  __m256 one_b1 = _mm256_set1_ps(0.1f), b2 = _mm256_set1_ps(0.999f), one_b2 = _mm256_set1_ps(0.001f),
         eps = _mm256_set1_ps(1e-8f), inv_bc2 = _mm256_set1_ps(31.6f), lr_t = _mm256_set1_ps(1e-2f);
};

/// One vector of Adam (PyTorch's formula, as optim/adam.cpp); kExact false drops the square root and
/// the division (the memory floor).
template <bool kExact>
inline void adam8(float* w, float* m, float* v, __m256 g, const AdamConstants& c) {
  __m256 mm = _mm256_loadu_ps(m), vv = _mm256_loadu_ps(v), ww = _mm256_loadu_ps(w);
  mm = _mm256_fmadd_ps(c.one_b1, _mm256_sub_ps(g, mm), mm);
  vv = _mm256_fmadd_ps(c.b2, vv, _mm256_mul_ps(_mm256_mul_ps(c.one_b2, g), g));
  _mm256_storeu_ps(m, mm);
  _mm256_storeu_ps(v, vv);
  if constexpr (kExact) {
    const __m256 den = _mm256_fmadd_ps(_mm256_sqrt_ps(vv), c.inv_bc2, c.eps);
    ww = _mm256_fnmadd_ps(c.lr_t, _mm256_div_ps(mm, den), ww);
  } else {
    ww = _mm256_fnmadd_ps(c.lr_t, _mm256_mul_ps(mm, _mm256_fmadd_ps(vv, c.inv_bc2, c.eps)), ww);
  }
  _mm256_storeu_ps(w, ww);
}

/// dW[i0:i0+4, j0:j0+8·V] = gᵀ·x over the 32 batch rows in 4·V registers; then either stored at
/// dw (row stride ld) or, kFused, handed to Adam at w, m, v (row stride kIn) in registers.
template <int V, bool kFused>
inline void tile(const float* g, const float* x, int64_t i0, int64_t j0, float* dw, int64_t ld, float* w, float* m,
                 float* v, const AdamConstants& c) {
  __m256 acc[4][V];
  for (auto& row : acc)
    for (auto& a : row) a = _mm256_setzero_ps();
  for (int64_t b = 0; b < kBatch; ++b) {
    __m256 xv[V];
    for (int q = 0; q < V; ++q) xv[q] = _mm256_loadu_ps(x + b * kIn + j0 + 8 * q);
    for (int r = 0; r < 4; ++r) {
      const __m256 gb = _mm256_broadcast_ss(g + b * kOut + i0 + r);
      for (int q = 0; q < V; ++q) acc[r][q] = _mm256_fmadd_ps(gb, xv[q], acc[r][q]);
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int q = 0; q < V; ++q) {
      const int64_t o = (i0 + r) * kIn + j0 + 8 * q;
      if constexpr (kFused) adam8<true>(w + o, m + o, v + o, acc[r][q], c);
      else _mm256_storeu_ps(dw + r * ld + j0 + 8 * q, acc[r][q]);
    }
}

/// One band of 4 weight rows (784 = 32 · 24 + 16 columns).
template <bool kFused>
void band(const float* g, const float* x, int64_t i0, float* dw, int64_t ld, float* w, float* m, float* v,
          const AdamConstants& c) {
  int64_t j0 = 0;
  for (; j0 + 24 <= kIn; j0 += 24) tile<3, kFused>(g, x, i0, j0, dw, ld, w, m, v, c);
  for (; j0 + 8 <= kIn; j0 += 8) tile<1, kFused>(g, x, i0, j0, dw, ld, w, m, v, c);
}
#endif

void BM_Fc1WeightGrad(benchmark::State& state) {
  Fc1 f;
  timed(state, f, [&] { f.product(); });
}
BENCHMARK(BM_Fc1WeightGrad)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_Fc1Adam(benchmark::State& state) {
  Fc1 f;
  timed(state, f, [&] { f.adam.step(); });
}
BENCHMARK(BM_Fc1Adam)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_Fc1WeightGradThenAdam(benchmark::State& state) {
  Fc1 f;
  timed(state, f, [&] {
    f.product();
    f.adam.step();
  });
}
BENCHMARK(BM_Fc1WeightGradThenAdam)->UseManualTime()->Unit(benchmark::kMicrosecond);

#ifdef __AVX2__
template <bool kExact>
void BM_Fc1AdamLoop(benchmark::State& state) {
  Fc1 f;
  const AdamConstants c;
  float *w = f.w.mutable_data<float>(), *m = f.m.data(), *v = f.v.data();
  const float* dw = f.dw.data<float>();
  timed(state, f, [&] {
    for (int64_t k = 0; k < kOut * kIn; k += 8) adam8<kExact>(w + k, m + k, v + k, _mm256_loadu_ps(dw + k), c);
  });
}
void BM_Fc1AdamIntrinsics(benchmark::State& state) { BM_Fc1AdamLoop<true>(state); }
void BM_Fc1AdamMemoryFloor(benchmark::State& state) { BM_Fc1AdamLoop<false>(state); }
BENCHMARK(BM_Fc1AdamIntrinsics)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Fc1AdamMemoryFloor)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_Fc1WeightGradOwnKernel(benchmark::State& state) {
  Fc1 f;
  const AdamConstants c;
  timed(state, f, [&] {
    for (int64_t i0 = 0; i0 < kOut; i0 += 4)
      band<false>(f.g.data<float>(), f.x.data<float>(), i0, f.dw.mutable_data<float>() + i0 * kIn, kIn, nullptr,
                  nullptr, nullptr, c);
  });
}
BENCHMARK(BM_Fc1WeightGradOwnKernel)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_Fc1FusedBand(benchmark::State& state) {
  Fc1 f;
  const AdamConstants c;
  std::vector<float> buffer(4 * kIn);  // 12.5 KB: one band's gradient, in L1
  float *w = f.w.mutable_data<float>(), *m = f.m.data(), *v = f.v.data();
  timed(state, f, [&] {
    for (int64_t i0 = 0; i0 < kOut; i0 += 4) {
      band<false>(f.g.data<float>(), f.x.data<float>(), i0, buffer.data(), kIn, nullptr, nullptr, nullptr, c);
      const int64_t o = i0 * kIn;
      for (int64_t k = 0; k < 4 * kIn; k += 8)
        adam8<true>(w + o + k, m + o + k, v + o + k, _mm256_loadu_ps(buffer.data() + k), c);
    }
  });
}
BENCHMARK(BM_Fc1FusedBand)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_Fc1FusedTile(benchmark::State& state) {
  Fc1 f;
  const AdamConstants c;
  float *w = f.w.mutable_data<float>(), *m = f.m.data(), *v = f.v.data();
  timed(state, f, [&] {
    for (int64_t i0 = 0; i0 < kOut; i0 += 4) band<true>(f.g.data<float>(), f.x.data<float>(), i0, nullptr, 0, w, m, v, c);
  });
}
BENCHMARK(BM_Fc1FusedTile)->UseManualTime()->Unit(benchmark::kMicrosecond);
#endif

}  // namespace
