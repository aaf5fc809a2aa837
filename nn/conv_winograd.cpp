// Winograd F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016)
// and the choice between it and im2col. In one dimension, two outputs of a 3-tap correlation from
// four inputs d are y = Aᵀ[(G g) ⊙ (Bᵀ d)]; in two, Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A with
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//   Aᵀ = [1 1 1 0; 0 1 −1 −1].
// Over channels the elementwise product becomes, per transformed position ξ (16 of them), a matrix
// product U[ξ] [out, in] · V[ξ] [in, tiles]. The weight gradient runs the adjoints: dM = A dY Aᵀ,
// dU[ξ] = dM[ξ]·V[ξ]ᵀ, dW = Gᵀ dU G.
// The transforms here are generic (xsimd, any dtype); for float on AVX2 the one-pass transforms of
// nn/conv_winograd_avx2.cpp run instead, with the same bits.
#include "nn/conv_winograd.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "autograd/env_setting.hpp"
#include "autograd/kernels.hpp"
#include "autograd/parallel.hpp"
#include "nn/conv_winograd_avx2.hpp"

namespace tapegrad::nn {
namespace {

// TAPEGRAD_CONV and set_conv_algorithm's setting.
tapegrad::detail::EnvSetting<ConvAlgorithm, 3> g_algorithm({"TAPEGRAD_CONV", "conv algorithm", "conv_algorithm_name",
                                                            "ConvAlgorithm",
                                                            {{{ConvAlgorithm::automatic, "auto"},
                                                              {ConvAlgorithm::im2col, "im2col"},
                                                              {ConvAlgorithm::winograd, "winograd"}}}});

}  // namespace

std::string conv_algorithm_name(ConvAlgorithm algorithm) { return g_algorithm.name(algorithm); }

ConvAlgorithm parse_conv_algorithm(std::string_view name) { return g_algorithm.parse(name); }

void set_conv_algorithm(ConvAlgorithm algorithm) { g_algorithm.set(algorithm); }

ConvAlgorithm conv_algorithm() { return g_algorithm.get(ConvAlgorithm::automatic, [](ConvAlgorithm) {}); }

bool winograd_applies(const ConvWindow& w) {
  return w.kh == 3 && w.kw == 3 && w.sh == 1 && w.sw == 1 && w.dh == 1 && w.dw == 1 && w.ph >= 0 && w.ph <= 2 &&
         w.pw >= 0 && w.pw <= 2;
}

ConvAlgorithm conv_choice(int64_t in_channels, int64_t out_channels, const ConvWindow& window) {
  const ConvAlgorithm setting = conv_algorithm();
  if (setting == ConvAlgorithm::im2col || !winograd_applies(window)) return ConvAlgorithm::im2col;
  if (setting == ConvAlgorithm::winograd) return ConvAlgorithm::winograd;
  return std::min(in_channels, out_channels) >= kWinogradMinChannels ? ConvAlgorithm::winograd : ConvAlgorithm::im2col;
}

namespace detail {
namespace {

/// Blocks of kWinogradTileBlock tiles per group of the weight gradient's partial sums (fixed, so
/// the sum does not depend on the thread count).
constexpr int64_t kWeightGradGroupBlocks = 8;

/// body(V{}, t) for t in [0, n): V = xsimd::batch<T> on whole batches of tiles t..t+W, then V = T
/// one tile at a time; load_tiles/store_tiles move a V from/to &p[t] (not load/store: ADL would pick
/// xsimd's aligned ones).
template <class T, class F>
void over_tiles(int64_t n, F&& body) {
  using B = xsimd::batch<T>;
  constexpr int64_t W = static_cast<int64_t>(B::size);
  int64_t t = 0;
  for (; t + W <= n; t += W) body(B{}, t);
  for (; t < n; ++t) body(T{}, t);
}
template <class V, class T>
V load_tiles(const T* p) {
  if constexpr (std::is_same_v<V, T>) return *p;
  else return V::load_unaligned(p);
}
template <class T, class V>
void store_tiles(T* p, const V& v) {
  if constexpr (std::is_same_v<V, T>) *p = v;
  else v.store_unaligned(p);
}

/// n elements of this thread's scratch buffer `slot` (0–2), contents unspecified: grow-only and
/// kept between calls, so a call does not map and fault in fresh pages (a tenth of a forward
/// convolution's time at the small CNN's shapes when allocated per call).
template <class T>
T* thread_scratch(int slot, int64_t n) {
  thread_local std::vector<T> buffers[3];
  std::vector<T>& b = buffers[slot];
  if (b.size() < static_cast<size_t>(n)) b.resize(static_cast<size_t>(n));
  return b.data();
}

/// u[ξ][o][c] = (G f Gᵀ)[ξ] for every filter f(o, c) (see winograd_conv for `flipped`); output
/// channels split over threads.
template <class T>
void transform_filters(const WinogradShape& s, const T* weight, bool flipped, T* u) {
  const int64_t plane = s.co * s.ci;
  parallel::parallel_for(0, s.co, parallel::rows_grain(64 * s.ci), [&](int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t c = 0; c < s.ci; ++c) {
      T f[3][3];
      const T* src = weight + (flipped ? c * s.co + o : o * s.ci + c) * 9;
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) f[i][j] = flipped ? src[(2 - i) * 3 + (2 - j)] : src[i * 3 + j];
      T gf[4][3];  // G f
      for (int j = 0; j < 3; ++j) {
        gf[0][j] = f[0][j];
        gf[1][j] = T(0.5) * (f[0][j] + f[1][j] + f[2][j]);
        gf[2][j] = T(0.5) * (f[0][j] - f[1][j] + f[2][j]);
        gf[3][j] = f[2][j];
      }
      T* out = u + o * s.ci + c;
      for (int i = 0; i < 4; ++i) {  // (G f) Gᵀ
        out[(i * 4 + 0) * plane] = gf[i][0];
        out[(i * 4 + 1) * plane] = T(0.5) * (gf[i][0] + gf[i][1] + gf[i][2]);
        out[(i * 4 + 2) * plane] = T(0.5) * (gf[i][0] - gf[i][1] + gf[i][2]);
        out[(i * 4 + 3) * plane] = gf[i][2];
      }
    }
  });
}

/// dst[k] = src[k] for k in [0, n) (src null: 0), in whole batches, the last one overlapping the one
/// before it: std::copy and std::fill at these lengths (tens of elements) became memmove and memset
/// calls whose overhead was 8% of a small-CNN epoch.
template <class T>
void copy_short(const T* src, int64_t n, T* dst) {
  using B = xsimd::batch<T>;
  constexpr int64_t W = static_cast<int64_t>(B::size);
  if (n < W) {
    for (int64_t k = 0; k < n; ++k) dst[k] = src ? src[k] : T(0);
    return;
  }
  const B zero(T(0));
  for (int64_t k = 0;; k += W) {
    const int64_t at = std::min(k, n - W);
    (src ? B::load_unaligned(src + at) : zero).store_unaligned(dst + at);
    if (at == n - W) break;
  }
}

/// dst[k] = plane[yy][k − px] for k in [0, len), 0 outside the h×w plane.
template <class T>
void padded_row(const T* plane, int64_t h, int64_t w, int64_t yy, int64_t px, int64_t len, T* dst) {
  copy_short<T>(nullptr, len, dst);
  if (yy < 0 || yy >= h) return;
  const int64_t lo = std::clamp<int64_t>(px, 0, len), hi = std::clamp<int64_t>(px + w, lo, len);
  copy_short(plane + yy * w + (lo - px), hi - lo, dst + lo);
}

/// The plane rows under the tile rows [r0, r1) of plane `channel` of a stack [n, channels, h, w],
/// for i in [0, size): rows[i·(2·nb + 2) + 2·(r − r0)·tw + k] = plane[2·ty − py + i][k − px] for
/// k in [0, 2·tw), zero-padded, the block's tile rows side by side; past the last, and (when
/// `tail` is not null) in tail[(i·rows + r − r0)·2 + k] for every tile row, columns 2·tw and 2·tw + 1.
template <class T>
void gather_rows(const T* planes, int64_t channels, int64_t channel, int64_t h, int64_t w, int64_t py, int64_t px,
                 const Tiles& tl, int64_t r0, int64_t r1, const int64_t* image, const int64_t* tile_row, int size,
                 T* rows, T* tail) {
  const int64_t nb = (r1 - r0) * tl.tw, span = 2 * tl.tw;
  for (int i = 0; i < size; ++i) {
    T* dst = rows + i * (2 * nb + 2);
    for (int64_t r = r0; r < r1; ++r) {  // each row writes 2 columns past its span; the next overwrites them
      const int64_t n = image[r - r0], ty = tile_row[r - r0];
      T* at = dst + (r - r0) * span;
      const T* plane = planes + (n * channels + channel) * h * w;
      const int64_t yy = 2 * ty - py + i;
      padded_row(plane, h, w, yy, px, span + 2, at);
      if (tail)  // from the plane, not from `at` (a load of what the copy just stored stalls)
        for (int64_t k = 0; k < 2; ++k) {
          const int64_t xx = span + k - px;
          tail[(i * (r1 - r0) + r - r0) * 2 + k] = yy >= 0 && yy < h && xx >= 0 && xx < w ? plane[yy * w + xx] : T(0);
        }
    }
  }
}

/// The rows of d·B for 4×4 patches p[2t .. 2t + 3] (t in [0, nt)): h_k[t] = (d B)[·][k].
template <class T>
void times_b(const T* __restrict__ p, int64_t nt, T* __restrict__ h0, T* __restrict__ h1, T* __restrict__ h2,
             T* __restrict__ h3) {
  for (int64_t t = 0; t < nt; ++t) {
    const T a = p[2 * t], b = p[2 * t + 1], c = p[2 * t + 2], e = p[2 * t + 3];
    h0[t] = a - c;
    h1[t] = b + c;
    h2[t] = c - b;
    h3[t] = b - e;
  }
}

/// even[t] = p[2t], odd[t] = p[2t + 1] for t in [0, nt).
template <class T>
void split_pairs(const T* __restrict__ p, int64_t nt, T* __restrict__ even, T* __restrict__ odd) {
  for (int64_t t = 0; t < nt; ++t) {
    even[t] = p[2 * t];
    odd[t] = p[2 * t + 1];
  }
}

/// q[2t] = e[t], q[2t + 1] = f[t] for t in [0, nt).
template <class T>
void interleave(const T* __restrict__ e, const T* __restrict__ f, int64_t nt, T* __restrict__ q) {
  for (int64_t t = 0; t < nt; ++t) {
    q[2 * t] = e[t];
    q[2 * t + 1] = f[t];
  }
}

/// Scratch of one thread's range of blocks: patches or their d·B rows [16][nb], plane rows
/// [4][2·nb + 2], and the rows' tails [4][rows][2].
template <class T>
struct PatchScratch {
  T *h, *rows, *tail;
  int64_t* image;  ///< image[r − r0] and tile_row[r − r0]: where tile row r of the block lies
  int64_t* tile_row;
  explicit PatchScratch(const Tiles& tl)
      : h(thread_scratch<T>(2, 16 * tl.max_block + 4 * (2 * tl.max_block + 2) + 8 * tl.rows_per_block)),
        rows(h + 16 * tl.max_block), tail(rows + 4 * (2 * tl.max_block + 2)),
        image(thread_scratch<int64_t>(0, 2 * tl.rows_per_block)), tile_row(image + tl.rows_per_block) {}
  /// Fills image and tile_row for the tile rows [r0, r1) (one division per row and block, not per
  /// row and channel).
  void locate(const Tiles& tl, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      image[r - r0] = r / tl.th;
      tile_row[r - r0] = r - image[r - r0] * tl.th;
    }
  }
};

/// v[ξ][c][t] = (Bᵀ d B)[ξ] of the 4×4 input patch d of every channel c and tile t of the tile rows
/// [r0, r1).
template <class T>
void transform_input(const WinogradShape& s, const Tiles& tl, const T* x, int64_t r0, int64_t r1, T* v,
                     PatchScratch<T>& w) {
#ifdef __AVX2__
  if constexpr (std::is_same_v<T, float>) {
    if (one_pass_transforms()) {
      transform_input_avx2(s, tl, x, r0, r1, v, w.image, w.tile_row);
      return;
    }
  }
#endif
  const int64_t nb = (r1 - r0) * tl.tw, xs = xi_stride(s.ci, nb), tw = tl.tw;
  const T* h = w.h;
  for (int64_t c = 0; c < s.ci; ++c) {
    gather_rows(x, s.ci, c, s.h, s.w, s.ph, s.pw, tl, r0, r1, w.image, w.tile_row, 4, w.rows, w.tail);
    for (int i = 0; i < 4; ++i) {  // row i of every patch times B, the block at once ...
      const T* p = w.rows + i * (2 * nb + 2);
      T *h0 = w.h + (i * 4) * nb, *h1 = h0 + nb, *h2 = h1 + nb, *h3 = h2 + nb;
      times_b(p, nb, h0, h1, h2, h3);
      for (int64_t r = 0; r + 1 < r1 - r0; ++r) {  // ... but a row's last patch read the next row's first columns
        const int64_t t = r * tw + tw - 1;
        const T b = p[2 * t + 1], cc = w.tail[(i * (r1 - r0) + r) * 2], e = w.tail[(i * (r1 - r0) + r) * 2 + 1];
        h0[t] = p[2 * t] - cc;
        h1[t] = b + cc;
        h2[t] = cc - b;
        h3[t] = b - e;
      }
    }
    T* out = v + c * nb;
    over_tiles<T>(nb, [&](auto z, int64_t t) {  // Bᵀ (d B), vectorised over tiles
      using V = decltype(z);
      for (int k = 0; k < 4; ++k) {
        const V a0 = load_tiles<V>(h + (0 + k) * nb + t), a1 = load_tiles<V>(h + (4 + k) * nb + t),
                a2 = load_tiles<V>(h + (8 + k) * nb + t), a3 = load_tiles<V>(h + (12 + k) * nb + t);
        store_tiles(out + (0 + k) * xs + t, V(a0 - a2));
        store_tiles(out + (4 + k) * xs + t, V(a1 + a2));
        store_tiles(out + (8 + k) * xs + t, V(a2 - a1));
        store_tiles(out + (12 + k) * xs + t, V(a1 - a3));
      }
    });
  }
}

/// y tile = Aᵀ M A (+ bias) for every output channel and tile of the tile rows [r0, r1), from
/// m[ξ][o][t].
template <class T>
void transform_output(const WinogradShape& s, const Tiles& tl, const T* m, const T* bias, int64_t r0, int64_t r1, T* y,
                      const PatchScratch<T>& w) {
#ifdef __AVX2__
  if constexpr (std::is_same_v<T, float>) {
    if (one_pass_transforms()) {
      transform_output_avx2(s, tl, m, bias, r0, r1, y, w.image, w.tile_row);
      return;
    }
  }
#endif
  T *y4 = w.h, *rows = w.rows;
  const int64_t nb = (r1 - r0) * tl.tw, xs = xi_stride(s.co, nb);
  for (int64_t o = 0; o < s.co; ++o) {
    const T b = bias ? bias[o] : T(0);
    const T* in = m + o * nb;
    over_tiles<T>(nb, [&](auto z, int64_t t) {  // vectorised over tiles
      using V = decltype(z);
      V am[2][4];  // Aᵀ M
      for (int j = 0; j < 4; ++j) {
        const V m0 = load_tiles<V>(in + (0 + j) * xs + t), m1 = load_tiles<V>(in + (4 + j) * xs + t),
                m2 = load_tiles<V>(in + (8 + j) * xs + t), m3 = load_tiles<V>(in + (12 + j) * xs + t);
        am[0][j] = m0 + m1 + m2;
        am[1][j] = m1 - m2 - m3;
      }
      const V vb(b);
      for (int i = 0; i < 2; ++i) {  // (Aᵀ M) A
        store_tiles(y4 + (2 * i + 0) * nb + t, V(vb + am[i][0] + am[i][1] + am[i][2]));
        store_tiles(y4 + (2 * i + 1) * nb + t, V(vb + am[i][1] - am[i][2] - am[i][3]));
      }
    });
    for (int i = 0; i < 2; ++i) {  // the tiles' output rows i side by side, then row by row into y
      T* q = rows + i * 2 * nb;
      interleave(y4 + 2 * i * nb, y4 + (2 * i + 1) * nb, nb, q);
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = w.image[r - r0], ty = w.tile_row[r - r0];
        if (2 * ty + i >= s.oh) continue;  // the bottom tiles of an odd height
        T* row = y + ((n * s.co + o) * s.oh + 2 * ty + i) * s.ow;
        const T* src = q + 2 * (r - r0) * tl.tw;
        copy_short(src, s.ow, row);
      }
    }
  }
}

/// dm[ξ][o][t] = (A dY Aᵀ)[ξ] for the 2×2 gradient tile dY (0 past the output's edge) of every
/// output channel o and tile t of the tile rows [r0, r1).
template <class T>
void transform_grad(const WinogradShape& s, const Tiles& tl, const T* grad, int64_t r0, int64_t r1, T* dm,
                    PatchScratch<T>& w) {
#ifdef __AVX2__
  if constexpr (std::is_same_v<T, float>) {
    if (one_pass_transforms()) {
      transform_grad_avx2(s, tl, grad, r0, r1, dm, w.image, w.tile_row);
      return;
    }
  }
#endif
  const int64_t nb = (r1 - r0) * tl.tw, xs = xi_stride(s.co, nb);
  const T* g = w.h;  // dY[a][b][t] at g[(2a + b)·nb + t]
  for (int64_t o = 0; o < s.co; ++o) {
    gather_rows(grad, s.co, o, s.oh, s.ow, 0, 0, tl, r0, r1, w.image, w.tile_row, 2, w.rows, static_cast<T*>(nullptr));
    for (int a = 0; a < 2; ++a) split_pairs(w.rows + a * (2 * nb + 2), nb, w.h + 2 * a * nb, w.h + (2 * a + 1) * nb);
    T* out = dm + o * nb;
    over_tiles<T>(nb, [&](auto z, int64_t t) {  // vectorised over tiles
      using V = decltype(z);
      V ag[4][2];  // A dY
      for (int j = 0; j < 2; ++j) {
        const V g0 = load_tiles<V>(g + (0 + j) * nb + t), g1 = load_tiles<V>(g + (2 + j) * nb + t);
        ag[0][j] = g0;
        ag[1][j] = g0 + g1;
        ag[2][j] = g0 - g1;
        ag[3][j] = -g1;
      }
      for (int i = 0; i < 4; ++i) {  // (A dY) Aᵀ
        store_tiles(out + (i * 4 + 0) * xs + t, ag[i][0]);
        store_tiles(out + (i * 4 + 1) * xs + t, V(ag[i][0] + ag[i][1]));
        store_tiles(out + (i * 4 + 2) * xs + t, V(ag[i][0] - ag[i][1]));
        store_tiles(out + (i * 4 + 3) * xs + t, V(-ag[i][1]));
      }
    });
  }
}

/// fn(b0, b1) over the tile blocks (or groups of them) [0, n), each worth `cost` multiply-adds:
/// in parallel when there are enough. The products run unsplit also when the blocks are not
/// split, so the result does not depend on the thread count.
template <class F>
void blocks_in_parallel(int64_t n, int64_t cost, F&& fn) {
  parallel::UnsplitProducts unsplit;
  parallel::parallel_for(0, n, parallel::rows_grain(cost), fn);
}

}  // namespace

template <class T>
void winograd_conv(const WinogradShape& s, const T* x, const T* weight, bool flipped, const T* bias, T* y) {
  const Tiles tl(s);
  std::vector<T> u(static_cast<size_t>(16 * s.co * s.ci));
  transform_filters(s, weight, flipped, u.data());
  blocks_in_parallel(tl.blocks, 16 * s.co * s.ci * tl.max_block, [&](int64_t b0, int64_t b1) {
    // This range's scratch: v[ξ][c][t], m[ξ][o][t], and the patches of one channel.
    const int64_t mb = tl.max_block;
    T *v = thread_scratch<T>(0, 16 * xi_stride(s.ci, mb)), *m = thread_scratch<T>(1, 16 * xi_stride(s.co, mb));
    PatchScratch<T> work(tl);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = tl.first_row(b), r1 = tl.end_row(b), nb = (r1 - r0) * tl.tw;
      work.locate(tl, r0, r1);
      transform_input(s, tl, x, r0, r1, v, work);
      for (int64_t xi = 0; xi < 16; ++xi)  // m[ξ] = u[ξ]·v[ξ]
        kernels::gemm_raw<T>(u.data() + xi * s.co * s.ci, v + xi * xi_stride(s.ci, nb), m + xi * xi_stride(s.co, nb),
                             s.co, nb, s.ci, false, false, T(0));
      transform_output(s, tl, m, bias, r0, r1, y, work);
    }
  });
}

template <class T>
void winograd_weight_grad(const WinogradShape& s, const T* grad, const T* x, T* dweight) {
  const Tiles tl(s);
  const int64_t groups = (tl.blocks + kWeightGradGroupBlocks - 1) / kWeightGradGroupBlocks, usize = 16 * s.co * s.ci;
  std::vector<T> partials(static_cast<size_t>(std::max<int64_t>(groups, 1) * usize), T(0));  // dU per group
  blocks_in_parallel(groups, kWeightGradGroupBlocks * usize * tl.max_block, [&](int64_t g0, int64_t g1) {
    // This range's scratch: v[ξ][c][t], dm[ξ][o][t], and the patches of one channel.
    const int64_t mb = tl.max_block;
    T *v = thread_scratch<T>(0, 16 * xi_stride(s.ci, mb)), *dm = thread_scratch<T>(1, 16 * xi_stride(s.co, mb));
    PatchScratch<T> work(tl);
    for (int64_t gi = g0; gi < g1; ++gi) {
      T* du = partials.data() + gi * usize;
      for (int64_t b = gi * kWeightGradGroupBlocks; b < std::min(tl.blocks, (gi + 1) * kWeightGradGroupBlocks); ++b) {
        const int64_t r0 = tl.first_row(b), r1 = tl.end_row(b), nb = (r1 - r0) * tl.tw;
        work.locate(tl, r0, r1);
        transform_input(s, tl, x, r0, r1, v, work);
        transform_grad(s, tl, grad, r0, r1, dm, work);
        for (int64_t xi = 0; xi < 16; ++xi)  // du[ξ] += dm[ξ]·v[ξ]ᵀ
          kernels::gemm_raw<T>(dm + xi * xi_stride(s.co, nb), v + xi * xi_stride(s.ci, nb), du + xi * s.co * s.ci, s.co,
                               s.ci, nb, false, true, T(1));
      }
    }
  });
  T* du = partials.data();  // the groups' partials, added in group order (elements split over threads)
  parallel::parallel_for(0, usize, parallel::rows_grain(groups), [&](int64_t i0, int64_t i1) {
    for (int64_t gi = 1; gi < groups; ++gi) {
      const T* part = partials.data() + gi * usize;
      for (int64_t i = i0; i < i1; ++i) du[i] += part[i];
    }
  });
  const int64_t plane = s.co * s.ci;
  parallel::parallel_for(0, plane, parallel::rows_grain(64), [&](int64_t k0, int64_t k1) {
  for (int64_t k = k0; k < k1; ++k) {  // dW = Gᵀ dU G, per filter
    T gu[3][4];                          // Gᵀ dU
    for (int j = 0; j < 4; ++j) {
      const T u0 = du[(0 + j) * plane + k], u1 = du[(4 + j) * plane + k], u2 = du[(8 + j) * plane + k],
              u3 = du[(12 + j) * plane + k];
      gu[0][j] = u0 + T(0.5) * (u1 + u2);
      gu[1][j] = T(0.5) * (u1 - u2);
      gu[2][j] = T(0.5) * (u1 + u2) + u3;
    }
    T* out = dweight + k * 9;
    for (int i = 0; i < 3; ++i) {  // (Gᵀ dU) G
      out[i * 3 + 0] = gu[i][0] + T(0.5) * (gu[i][1] + gu[i][2]);
      out[i * 3 + 1] = T(0.5) * (gu[i][1] - gu[i][2]);
      out[i * 3 + 2] = T(0.5) * (gu[i][1] + gu[i][2]) + gu[i][3];
    }
  }
  });
}

namespace {
std::atomic<bool> g_generic_transforms{false};
}  // namespace

bool one_pass_transforms() {
#ifdef __AVX2__
  return !g_generic_transforms.load(std::memory_order_relaxed);
#else
  return false;
#endif
}

GenericTransformsScope::GenericTransformsScope() : prev_(g_generic_transforms.exchange(true)) {}
GenericTransformsScope::~GenericTransformsScope() { g_generic_transforms.store(prev_); }

template void winograd_conv<float>(const WinogradShape&, const float*, const float*, bool, const float*, float*);
template void winograd_conv<double>(const WinogradShape&, const double*, const double*, bool, const double*, double*);
template void winograd_weight_grad<float>(const WinogradShape&, const float*, const float*, float*);
template void winograd_weight_grad<double>(const WinogradShape&, const double*, const double*, double*);

}  // namespace detail
}  // namespace tapegrad::nn
