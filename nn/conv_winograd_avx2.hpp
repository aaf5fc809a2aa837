#pragma once
/// \file conv_winograd_avx2.hpp
/// Internal to the Winograd convolution: what nn/conv_winograd.cpp (the algorithm, the generic
/// xsimd transforms for any dtype) and nn/conv_winograd_avx2.cpp (the one-pass float transforms on
/// AVX2) share: the tile grid, the layout of the transformed tiles, and those transforms'
/// declarations. Both paths give the same bits (tests/nn/test_conv.cpp checks it).
#include <algorithm>
#include <cstdint>

#include "nn/conv_winograd.hpp"

namespace tapegrad::nn::detail {

/// The tile grid: 2×2 output tiles, ⌈oh/2⌉ × ⌈ow/2⌉ per image, numbered image by image, row by row.
/// A block is a fixed number of whole tile rows (about kWinogradTileBlock tiles), so each of its
/// rows is a contiguous run of tiles.
struct Tiles {
  int64_t th, tw, rows, rows_per_block, blocks, max_block;
  explicit Tiles(const WinogradShape& s)
      : th((s.oh + 1) / 2), tw((s.ow + 1) / 2), rows(s.n * th),
        rows_per_block(std::max<int64_t>(1, (kWinogradTileBlock + tw - 1) / tw)),
        blocks((rows + rows_per_block - 1) / rows_per_block), max_block(rows_per_block * tw) {}
  /// The tile rows [r0, r1) of block b.
  int64_t first_row(int64_t b) const { return b * rows_per_block; }
  int64_t end_row(int64_t b) const { return std::min(rows, (b + 1) * rows_per_block); }
};

/// The distance between the transformed positions ξ and ξ + 1 of v[ξ][c][t] or m[ξ][o][t] (channels
/// × nb elements each): 16 elements more than that, so that the transforms' 16 streams, one per ξ,
/// do not all fall in the same cache sets when channels × nb is a multiple of 1024 (32 channels ×
/// 8 × 16 tiles: 4 KiB-aligned streams took the input transform from 0.3 to 0.7 ms, bench_nn).
inline int64_t xi_stride(int64_t channels, int64_t nb) { return channels * nb + 16; }

#ifdef __AVX2__
/// v[ξ][c][t] = (Bᵀ d B)[ξ] of every channel c and tile t of the tile rows [r0, r1), for float, in
/// one pass from the input planes x (image[i], tile_row[i]: the image and tile row of row r0 + i).
void transform_input_avx2(const WinogradShape& s, const Tiles& tl, const float* x, int64_t r0, int64_t r1, float* v,
                          const int64_t* image, const int64_t* tile_row);

/// y tile = Aᵀ M A (+ bias) for every output channel and tile of the tile rows [r0, r1), from
/// m[ξ][o][t], for float, in one pass.
void transform_output_avx2(const WinogradShape& s, const Tiles& tl, const float* m, const float* bias, int64_t r0,
                           int64_t r1, float* y, const int64_t* image, const int64_t* tile_row);

/// dm[ξ][o][t] = (A dY Aᵀ)[ξ] of the 2×2 gradient tiles of the tile rows [r0, r1), for float, in
/// one pass from the gradient planes.
void transform_grad_avx2(const WinogradShape& s, const Tiles& tl, const float* grad, int64_t r0, int64_t r1,
                         float* dm, const int64_t* image, const int64_t* tile_row);
#endif

}  // namespace tapegrad::nn::detail
