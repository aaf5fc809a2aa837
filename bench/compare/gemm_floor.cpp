// The GEMM floor of one seed-MLP epoch: only the sgemm calls of every training step, with the
// shapes, transposes and BLAS (OpenBLAS, cblas_sgemm) that tapegrad's fused linear issues:
//
//   forward   y1[B,128] = x[B,784] · W1[128,784]ᵀ        y2[B,10]    = h[B,128] · W2[10,128]ᵀ
//   backward  dW2[10,128] = g2[B,10]ᵀ · h[B,128]         dh[B,128]   = g2[B,10] · W2[10,128]
//             dW1[128,784] = g1[B,128]ᵀ · x[B,784]       (no dx: the input needs no gradient)
//
// Steps per epoch as in training: ⌈N / B⌉, the last one with the remainder. No other work.
//
//   gemm_floor --batch-size 32 [--train 60000] [--reps 3]   prints {"batch_size":..,"seconds":..}
// `seconds` is the median over `reps` epochs (after one warm-up epoch).
//
//   gemm_floor --peak 2048 [--reps 3]   the machine's single-core sgemm peak: the median GFLOP/s
//                                       (2·n³ / seconds) of an n×n×n product, prints {"peak_gflops":..}
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

extern "C" char* openblas_get_corename(void);

int main(int argc, char** argv) {
  long batch = 32, train = 60000, reps = 3, peak = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    long v = std::stol(argv[i + 1]);
    if (a == "--batch-size") batch = v;
    else if (a == "--train") train = v;
    else if (a == "--reps") reps = v;
    else if (a == "--peak") peak = v;
    else {
      std::fprintf(stderr, "gemm_floor: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  openblas_set_num_threads(1);
  auto median_seconds = [&](auto&& work) {
    work();  // warm-up
    std::vector<double> times;
    for (long r = 0; r < reps; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      work();
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  };
  if (peak > 0) {
    const int n = static_cast<int>(peak);
    std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
    const double seconds = median_seconds([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    });
    std::printf("{\"peak_n\": %d, \"seconds\": %.6f, \"peak_gflops\": %.3f, \"blas_core\": \"%s\"}\n", n, seconds,
                2.0 * n * double(n) * n / seconds * 1e-9, openblas_get_corename());
    return 0;
  }
  const int in = 784, hid = 128, out = 10;
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto buf = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& e : v) e = u(rng);
    return v;
  };
  std::vector<float> x = buf(batch * in), w1 = buf(hid * in), w2 = buf(out * hid), y1 = buf(batch * hid),
                     y2 = buf(batch * out), dw1 = buf(hid * in), dw2 = buf(out * hid), dh = buf(batch * hid);
  auto epoch = [&] {
    for (long start = 0; start < train; start += batch) {
      const int b = static_cast<int>(std::min(batch, train - start));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, hid, in, 1.f, x.data(), in, w1.data(), in, 0.f,
                  y1.data(), hid);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, out, hid, 1.f, y1.data(), hid, w2.data(), hid, 0.f,
                  y2.data(), out);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, hid, b, 1.f, y2.data(), out, y1.data(), hid, 0.f,
                  dw2.data(), hid);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, hid, out, 1.f, y2.data(), out, w2.data(), hid, 0.f,
                  dh.data(), hid);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hid, in, b, 1.f, dh.data(), hid, x.data(), in, 0.f,
                  dw1.data(), in);
    }
  };
  const double seconds = median_seconds(epoch);
  std::printf("{\"batch_size\": %ld, \"train\": %ld, \"seconds\": %.6f, \"blas_core\": \"%s\"}\n", batch, train,
              seconds, openblas_get_corename());
}
