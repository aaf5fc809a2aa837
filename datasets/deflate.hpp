#pragma once
/// \file deflate.hpp
/// Whole-buffer zlib compression shared by the writers (internal: IDX's gzip files, .npz members).
#include <cstdint>
#include <string>
#include <vector>

namespace tapegrad::datasets::detail {

/// `raw` compressed at zlib's default level 6, 1 GiB of input at a time: `window_bits` 15 + 16 gives
/// one gzip member (as gzip(1) writes it), -15 raw deflate (a zip member's data). Throws DatasetError
/// "<what>: ..." when zlib fails.
std::vector<uint8_t> deflate_bytes(const std::vector<uint8_t>& raw, int window_bits, const std::string& what);

}  // namespace tapegrad::datasets::detail
