#pragma once
/// \file broadcast.hpp
/// Internal: a strided loop over a broadcast output. `broadcast_rows` calls
/// `row(out_offset, in_offsets, in_strides, length)` once per innermost row of the output, with each
/// input's element offset and its stride along the row (0 where that input is broadcast). Rows
/// run in parallel (autograd/parallel.hpp) when the output is large: `row` must write only its own
/// output row.
#include <array>

#include "autograd/parallel.hpp"
#include "autograd/shape.hpp"

namespace tapegrad::kernels {

template <size_t N, class Row>
void broadcast_rows(const Shape& out, const std::array<const Shape*, N>& ins, Row&& row) {
  const size_t rank = out.size();
  if (rank == 0) {
    std::array<int64_t, N> off{}, st{};
    row(int64_t(0), off, st, int64_t(1));
    return;
  }
  // Strides of every input expressed in the output's index space (0 on broadcast dimensions).
  std::array<std::vector<int64_t>, N> strides;
  for (size_t k = 0; k < N; ++k) {
    const Shape& s = *ins[k];
    strides[k].assign(rank, 0);
    int64_t stride = 1;
    for (size_t i = 0; i < s.size(); ++i) {
      size_t d = s.size() - 1 - i;
      size_t od = rank - 1 - i;
      strides[k][od] = s[d] == 1 ? 0 : stride;
      stride *= s[d];
    }
  }
  const int64_t len = out[rank - 1];
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < rank; ++i) rows *= out[i];
  if (len == 0 || rows == 0) return;
  parallel::parallel_for(0, rows, parallel::rows_grain(len), [&](int64_t r0, int64_t r1) {
    // The odometer at row r0: its index over the leading dimensions and each input's offset.
    std::vector<int64_t> idx(rank, 0);
    std::array<int64_t, N> off{}, st{};
    for (size_t k = 0; k < N; ++k) st[k] = strides[k][rank - 1];
    for (int64_t d = static_cast<int64_t>(rank) - 2, rest = r0; d >= 0; --d) {
      idx[static_cast<size_t>(d)] = rest % out[static_cast<size_t>(d)];
      rest /= out[static_cast<size_t>(d)];
      for (size_t k = 0; k < N; ++k) off[k] += idx[static_cast<size_t>(d)] * strides[k][static_cast<size_t>(d)];
    }
    for (int64_t r = r0; r < r1; ++r) {
      row(r * len, off, st, len);
      // advance the odometer over the leading dimensions
      for (size_t d = rank - 1; d-- > 0;) {
        ++idx[d];
        for (size_t k = 0; k < N; ++k) off[k] += strides[k][d];
        if (idx[d] < out[d]) break;
        for (size_t k = 0; k < N; ++k) off[k] -= strides[k][d] * out[d];
        idx[d] = 0;
      }
    }
  });
}

}  // namespace tapegrad::kernels
