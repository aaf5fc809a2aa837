#pragma once
/// \file npy_detail.hpp
/// Internals shared by the .npy reader (npy.cpp) and the .npz reader (npy_zip.cpp); not part of the
/// public API.
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/npy.hpp"

namespace tapegrad::datasets::npy_detail {

/// A checked .npy header.
struct Header {
  NpyType type = NpyType::f32;
  bool big_endian = false;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  uint64_t header_bytes = 0;   ///< magic, version, length and dict: where the payload starts
  uint64_t payload_bytes = 0;  ///< numel · itemsize, known to fit PTRDIFF_MAX
};

/// Parses and checks the header at the start of `data` (`size` bytes available, at least the whole
/// header for success). Throws DatasetError "<name>: ...".
Header parse_header(const uint8_t* data, size_t size, const std::string& name);
/// Throws DatasetError unless `have` payload bytes are exactly what the header announces.
void check_payload_size(const Header& h, uint64_t have, const std::string& name);
/// The array of a checked header and its payload: byte-swapped, transposed from Fortran order, and
/// bools checked to be 0 or 1.
NpyArray finish(const Header& h, std::vector<uint8_t> payload, const std::string& name);

}  // namespace tapegrad::datasets::npy_detail
