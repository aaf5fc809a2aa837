#pragma once
/// \file idx.hpp
/// The IDX file format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/):
///
///     bytes 0-1  zero
///     byte  2    element type: 0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
///     byte  3    number of dimensions d (1..8)
///     4·d bytes  the dimensions, big-endian uint32
///     then       the elements, big-endian, row-major
///
/// Files may be gzip-compressed (detected by their magic bytes, not by name). Everything read from a
/// file is validated before it is trusted: a wrong magic, an unknown type, a dimension product that
/// overflows, a truncated payload or trailing bytes throw DatasetError naming the file. The payload is
/// allocated only after the raw file size was checked against the header, and for gzip files it grows
/// with the bytes actually decompressed, so a lying header never causes a huge allocation.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad::datasets {

/// A file that is missing, unreadable, corrupt or inconsistent. The message names the file.
struct DatasetError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// IDX element types (the value of the header's third byte).
enum class IdxType : uint8_t { u8 = 0x08, i8 = 0x09, i16 = 0x0B, i32 = 0x0C, f32 = 0x0D, f64 = 0x0E };

/// Size in bytes of one element of `type`.
size_t idx_type_size(IdxType type);
/// "ubyte", "int32", ...
const char* idx_type_name(IdxType type);

/// A decoded IDX array: its type, dimensions and elements (converted to host byte order).
struct IdxArray {
  IdxType type = IdxType::u8;
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;  ///< numel() · idx_type_size(type) bytes, host byte order
  /// The product of the dimensions.
  int64_t numel() const;
  /// Element i converted to double (bounds-checked).
  double value(int64_t i) const;
};

/// The largest payload read_idx accepts (4 GiB): anything larger is treated as a corrupt header.
inline constexpr uint64_t kMaxIdxPayload = uint64_t{1} << 32;

/// Reads a raw or gzip-compressed IDX file. Throws DatasetError naming `path` on any problem.
IdxArray read_idx(const std::string& path);

/// Writes `array` as a raw (uncompressed) IDX file, or gzip-compressed when `gzip` is true.
void write_idx(const std::string& path, const IdxArray& array, bool gzip = false);

/// The array as a tensor of `dtype` and the file's dimensions, each element multiplied by `scale`
/// (e.g. 1/255 to bring image bytes into [0, 1]). int64 requires integer element types.
Tensor idx_to_tensor(const IdxArray& array, DType dtype, double scale = 1.0);

}  // namespace tapegrad::datasets
