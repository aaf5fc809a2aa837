// The one-pass Winograd transforms for float on AVX2 (nn/conv_winograd_avx2.hpp): from the planes
// straight to the transformed tiles and back, 8 tiles per register, with the generic path's
// operations in the same order (nn/conv_winograd.cpp), so both give the same bits.
#include "nn/conv_winograd_avx2.hpp"

#ifdef __AVX2__
#include <immintrin.h>

namespace tapegrad::nn::detail {
namespace {

/// The even and the odd elements of the 16 floats lo, hi, in order.
inline void deinterleave(__m256 lo, __m256 hi, __m256& even, __m256& odd) {
  // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the 64-bit pairs into order 0 2 1 3
  even = _mm256_castpd_ps(
      _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
  odd = _mm256_castpd_ps(
      _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
}

/// The lanes k of 8 consecutive columns first + k that lie in [0, end), as a vmaskmov mask.
inline __m256i lanes_within(int64_t first, int64_t end) {
  const __m256i at = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                      _mm256_set1_epi32(static_cast<int>(first)));
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), at),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(end)), at));
}

/// Prefetches the `w` floats of a plane row into L1.
inline void prefetch_row(const float* row, int64_t w) {
  const char* at = reinterpret_cast<const char*>(row);
  for (int64_t b = 0; b < w * static_cast<int64_t>(sizeof(float)); b += 64) _mm_prefetch(at + b, _MM_HINT_T0);
  _mm_prefetch(at + w * sizeof(float) - 1, _MM_HINT_T0);
}

/// How many channels ahead transform_input_avx2 prefetches the plane rows it will read: read in
/// channel order, a block's rows are short runs 784 bytes apart at 14 × 14, which the hardware
/// prefetcher missed (the first load of each row took a third of the transform's samples inside
/// the small CNN's train step; a 0.7 → 0.45 ratio of the transform's samples to sgemm's).
constexpr int64_t kPrefetchChannels = 1;

}  // namespace

/// transform_input for float on AVX2, in one pass from the input planes to v, with the operations
/// of the generic path in the same order (so the same bits). Per channel, chunk of 8 tiles of a
/// tile row, and tile row: the four plane rows' 18 columns under the chunk are loaded (masked
/// where they leave the plane: those lanes are 0), split into the patches' columns d0..d3 (the even
/// and odd elements, and the same 2 further on) and multiplied by B in registers, then Bᵀ (d B)
/// goes out in 16 stores. The patches' rows 2 and 3 are the next tile row's rows 0 and 1, so their
/// d B is carried over; the rows of channel c + kPrefetchChannels are prefetched. No scratch rows,
/// no second pass, no per-row fix-ups (the generic path writes every padded row twice, then d B
/// for the block, then reads it back).
/// The chunks run from a row's last to its first, so that the 8 lanes of a last chunk that run
/// past the row land on tiles that a later store overwrites (the next row's, or the next channel's
/// first row's), or, after the last channel, in the 16 elements between ξ and ξ + 1 (xi_stride).
void transform_input_avx2(const WinogradShape& s, const Tiles& tl, const float* x, int64_t r0, int64_t r1,
                          float* v, const int64_t* image, const int64_t* tile_row) {
  const int64_t tw = tl.tw, nb = (r1 - r0) * tw, xs = xi_stride(s.ci, nb), chunks = (tw + 7) / 8;
  // The d B rows of the patches' row i of 8 tiles, from the plane row yy (zero outside the plane).
  const auto times_b = [&](const float* plane, int64_t yy, int64_t col, bool inside, const __m256i* mask,
                           __m256* h) {
    __m256 p[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    if (yy >= 0 && yy < s.h) {
      const float* at = plane + yy * s.w + col;  // may lie before the plane: only masked lanes read there
      for (int u = 0; u < 4; ++u) {
        const float* from = at + (u & 1) * 8 + (u & 2);
        p[u] = inside ? _mm256_loadu_ps(from) : _mm256_maskload_ps(from, mask[u]);
      }
    }
    __m256 d0, d1, d2, d3;  // the patches' columns 0..3
    deinterleave(p[0], p[1], d0, d1);
    deinterleave(p[2], p[3], d2, d3);
    h[0] = _mm256_sub_ps(d0, d2);
    h[1] = _mm256_add_ps(d1, d2);
    h[2] = _mm256_sub_ps(d2, d1);
    h[3] = _mm256_sub_ps(d1, d3);
  };
  for (int64_t c = 0; c < s.ci; ++c)
    for (int64_t q = chunks - 1; q >= 0; --q) {
      const int64_t col = 16 * q - s.pw;  // the plane column of the chunk's first patch column
      const bool inside = col >= 0 && col + 18 <= s.w;
      __m256i mask[4];  // the lanes of the loads at col + 0, 8, 2, 10 that lie in the plane
      for (int u = 0; u < 4; ++u) mask[u] = lanes_within(col + (u & 1) * 8 + (u & 2), s.w);
      __m256 h[4][4];  // h[i][k]: (d B)[i][k] of the chunk's 8 patches
      for (int64_t r = r0; r < r1; ++r) {
        const float* plane = x + (image[r - r0] * s.ci + c) * s.h * s.w;
        const int64_t y0 = 2 * tile_row[r - r0] - s.ph;  // the plane row of the patches' row 0
        const bool carried = r > r0 && image[r - r0 - 1] == image[r - r0];
        for (int i = 0; i < 4; ++i) {
          if (carried && i < 2)
            for (int k = 0; k < 4; ++k) h[i][k] = h[i + 2][k];
          else
            times_b(plane, y0 + i, col, inside, mask, h[i]);
        }
        if (q == 0 && c + kPrefetchChannels < s.ci)  // the same rows of a later channel
          for (int i = carried ? 2 : 0; i < 4; ++i)
            if (y0 + i >= 0 && y0 + i < s.h) prefetch_row(plane + kPrefetchChannels * s.h * s.w + (y0 + i) * s.w, s.w);
        float* out = v + c * nb + (r - r0) * tw + 8 * q;
        for (int k = 0; k < 4; ++k) {
          const __m256 o[4] = {_mm256_sub_ps(h[0][k], h[2][k]), _mm256_add_ps(h[1][k], h[2][k]),
                               _mm256_sub_ps(h[2][k], h[1][k]), _mm256_sub_ps(h[1][k], h[3][k])};
          for (int j = 0; j < 4; ++j) _mm256_storeu_ps(out + (4 * j + k) * xs, o[j]);
        }
      }
    }
}

/// transform_output for float on AVX2, in one pass from m to y with the generic path's operations
/// in the same order (so the same bits): per output channel, tile row and chunk of 8 tiles, Aᵀ M A
/// in registers, the two output rows' 16 columns interleaved in registers and stored, instead of
/// the 4 tile rows to scratch, interleaving them into rows, and copying the rows into y.
/// A chunk's 16 columns may run past its row (at most 15): into rows of this block's tile rows of
/// the same image that are written later (the chunks go from a row's last to its first, the rows
/// in order), so that a plain store is safe except at the end of the image's rows in this block,
/// where the columns go out one by one from a buffer (vmaskmovps stores, slow on AMD, were half
/// the transform's time when every row used them, and still a tenth when only those rows did).
/// The last chunk's loads may run past the block's tiles (into the next channel's, or
/// the 16 elements between ξ and ξ + 1): those lanes are never stored.
void transform_output_avx2(const WinogradShape& s, const Tiles& tl, const float* m, const float* bias,
                           int64_t r0, int64_t r1, float* y, const int64_t* image, const int64_t* tile_row) {
  const int64_t tw = tl.tw, nb = (r1 - r0) * tw, xs = xi_stride(s.co, nb), chunks = (tw + 7) / 8;
  for (int64_t o = 0; o < s.co; ++o) {
    const __m256 vb = _mm256_set1_ps(bias ? bias[o] : 0.f);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = image[r - r0], ty = tile_row[r - r0];
      float* plane = y + (n * s.co + o) * s.oh * s.ow;
      // Plane elements before `written` are written by this block from tile row r on.
      const int64_t written = std::min(s.oh, 2 * (std::min(r1, (n + 1) * tl.th) - n * tl.th)) * s.ow;
      for (int64_t q = chunks - 1; q >= 0; --q) {
        const float* in = m + o * nb + (r - r0) * tw + 8 * q;
        __m256 am[2][4];  // Aᵀ M
        for (int j = 0; j < 4; ++j) {
          const __m256 m0 = _mm256_loadu_ps(in + (0 + j) * xs), m1 = _mm256_loadu_ps(in + (4 + j) * xs),
                       m2 = _mm256_loadu_ps(in + (8 + j) * xs), m3 = _mm256_loadu_ps(in + (12 + j) * xs);
          am[0][j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
          am[1][j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
        }
        for (int i = 0; i < 2; ++i) {  // (Aᵀ M) A: output row 2·ty + i of the 8 tiles
          if (2 * ty + i >= s.oh) continue;  // the bottom tiles of an odd height
          const __m256 y0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(vb, am[i][0]), am[i][1]), am[i][2]),
                       y1 = _mm256_sub_ps(_mm256_sub_ps(_mm256_add_ps(vb, am[i][1]), am[i][2]), am[i][3]);
          const __m256 lo = _mm256_unpacklo_ps(y0, y1), hi = _mm256_unpackhi_ps(y0, y1);  // tiles 0 1 4 5, 2 3 6 7
          const __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20), second = _mm256_permute2f128_ps(lo, hi, 0x31);
          const int64_t at = (2 * ty + i) * s.ow + 16 * q;
          if (at + 16 <= written) {
            _mm256_storeu_ps(plane + at, first);
            _mm256_storeu_ps(plane + at + 8, second);
          } else {  // the row's columns from the chunk's first on: fewer than 16
            alignas(32) float cols[16];
            _mm256_store_ps(cols, first);
            _mm256_store_ps(cols + 8, second);
            for (int64_t k = 0; k < s.ow - 16 * q; ++k) plane[at + k] = cols[k];
          }
        }
      }
    }
  }
}

/// transform_grad for float on AVX2, in one pass from the gradient planes to dm with the generic
/// path's operations in the same order (so the same bits): per output channel, chunk of 8 tiles
/// and tile row, the two gradient rows' 16 columns are loaded (masked past the plane's edge),
/// split into the tiles' columns, A dY Aᵀ in registers, 16 stores; the rows of the next channel
/// are prefetched. The chunks and their stores' overrun are as in transform_input_avx2.
void transform_grad_avx2(const WinogradShape& s, const Tiles& tl, const float* grad, int64_t r0, int64_t r1,
                         float* dm, const int64_t* image, const int64_t* tile_row) {
  const int64_t tw = tl.tw, nb = (r1 - r0) * tw, xs = xi_stride(s.co, nb), chunks = (tw + 7) / 8;
  const __m256 sign = _mm256_set1_ps(-0.f);
  for (int64_t o = 0; o < s.co; ++o)
    for (int64_t q = chunks - 1; q >= 0; --q) {
      const bool inside = 16 * q + 16 <= s.ow;
      const __m256i mask[2] = {lanes_within(16 * q, s.ow), lanes_within(16 * q + 8, s.ow)};
      for (int64_t r = r0; r < r1; ++r) {
        const float* plane = grad + (image[r - r0] * s.co + o) * s.oh * s.ow;
        const int64_t y0 = 2 * tile_row[r - r0];
        __m256 g[2][2];  // g[a][b]: dY[a][b] of the chunk's 8 tiles
        for (int a = 0; a < 2; ++a) {
          __m256 p[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
          if (y0 + a < s.oh) {
            const float* at = plane + (y0 + a) * s.ow + 16 * q;
            for (int u = 0; u < 2; ++u)
              p[u] = inside ? _mm256_loadu_ps(at + 8 * u) : _mm256_maskload_ps(at + 8 * u, mask[u]);
            if (q == 0 && o + kPrefetchChannels < s.co) prefetch_row(at + kPrefetchChannels * s.oh * s.ow, s.ow);
          }
          deinterleave(p[0], p[1], g[a][0], g[a][1]);
        }
        __m256 ag[4][2];  // A dY
        for (int j = 0; j < 2; ++j) {
          ag[0][j] = g[0][j];
          ag[1][j] = _mm256_add_ps(g[0][j], g[1][j]);
          ag[2][j] = _mm256_sub_ps(g[0][j], g[1][j]);
          ag[3][j] = _mm256_xor_ps(g[1][j], sign);
        }
        float* out = dm + o * nb + (r - r0) * tw + 8 * q;
        for (int i = 0; i < 4; ++i) {  // (A dY) Aᵀ
          _mm256_storeu_ps(out + (i * 4 + 0) * xs, ag[i][0]);
          _mm256_storeu_ps(out + (i * 4 + 1) * xs, _mm256_add_ps(ag[i][0], ag[i][1]));
          _mm256_storeu_ps(out + (i * 4 + 2) * xs, _mm256_sub_ps(ag[i][0], ag[i][1]));
          _mm256_storeu_ps(out + (i * 4 + 3) * xs, _mm256_xor_ps(ag[i][1], sign));
        }
      }
    }
}

}  // namespace tapegrad::nn::detail
#endif
