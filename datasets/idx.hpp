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
/// Files may be gzip-compressed (detected by their magic bytes, not by name; several concatenated
/// gzip members are one stream, as gzip(1) reads them). Everything read from a file is validated
/// before it is trusted: a wrong magic, an unknown type, a dimension product that overflows, a
/// truncated payload, trailing bytes (raw, decompressed, or after the last gzip member) throw
/// DatasetError naming the file. Only regular files are opened (io::ReadFile: a FIFO is refused, and
/// errors carry the system's reason, "Permission denied"). read_idx allocates the payload only after
/// the raw file size was checked against the header, and for gzip files it grows with the bytes
/// actually decompressed, so a lying header never causes a huge allocation. IdxReader lets a caller
/// check the header (and its own size limit) first, then decompress straight into its own buffer.
///
/// Arrays may be empty (a zero dimension): read_idx returns them; load_mnist refuses zero images.
#include <cstdint>
#include <memory>
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
enum class IdxType : uint8_t {
  u8 = 0x08,   ///< unsigned byte (MNIST's images and labels)
  i8 = 0x09,   ///< signed byte
  i16 = 0x0B,  ///< 16-bit integer, big-endian in the file
  i32 = 0x0C,  ///< 32-bit integer, big-endian in the file
  f32 = 0x0D,  ///< 32-bit float, big-endian in the file
  f64 = 0x0E,  ///< 64-bit float, big-endian in the file
};

/// Size in bytes of one element of `type`.
size_t idx_type_size(IdxType type);
/// "ubyte", "int32", ...
const char* idx_type_name(IdxType type);

/// A decoded IDX array: its type, dimensions and elements (converted to host byte order).
struct IdxArray {
  IdxType type = IdxType::u8;   ///< the element type from the header
  std::vector<int64_t> dims;    ///< the dimensions, outermost first
  std::vector<uint8_t> bytes;  ///< numel() · idx_type_size(type) bytes, host byte order
  /// The product of the dimensions.
  int64_t numel() const;
  /// Element i converted to double (bounds-checked).
  double value(int64_t i) const;
};

/// The largest payload read_idx accepts (4 GiB): anything larger is treated as a corrupt header.
inline constexpr uint64_t kMaxIdxPayload = uint64_t{1} << 32;

/// An IDX file opened and its header read and checked: the element type, the dimensions and the
/// payload size are known before any payload byte is read or allocated.
///
///     IdxReader r(path);                                  // throws DatasetError on a bad header
///     if (r.payload_bytes() > limit) ...;                 // the caller's own limit
///     r.read_into(buffer);                                // one copy, straight from the file
class IdxReader {
 public:
  /// Opens `path` (raw or gzip) and reads its header. Throws DatasetError naming `path`.
  explicit IdxReader(const std::string& path);
  ~IdxReader();
  IdxReader(const IdxReader&) = delete;
  IdxReader& operator=(const IdxReader&) = delete;

  IdxType type() const { return type_; }                      ///< the element type from the header
  const std::vector<int64_t>& dims() const { return dims_; }  ///< the dimensions, outermost first
  /// The product of the dimensions.
  int64_t numel() const;
  /// numel() · idx_type_size(type()): at most kMaxIdxPayload.
  uint64_t payload_bytes() const { return payload_; }
  const std::string& path() const { return path_; }  ///< the file, as given (named in every error)

  /// Reads the payload into `dst` (payload_bytes() bytes, converted to host byte order) and checks
  /// that nothing follows it. Call once. Throws DatasetError on truncated, corrupt or trailing data.
  void read_into(uint8_t* dst);
  /// The payload as read_into does, in a vector that grows with the bytes really decompressed.
  std::vector<uint8_t> read_all();

 private:
  /// Throws unless `have` bytes are the whole payload and nothing follows; then byte-swaps `data`.
  void finish(uint8_t* data, uint64_t have);
  struct Source;  // the file, raw or decompressing
  std::unique_ptr<Source> source_;
  std::string path_;
  IdxType type_ = IdxType::u8;
  std::vector<int64_t> dims_;
  uint64_t payload_ = 0;
};

/// Reads a raw or gzip-compressed IDX file. Throws DatasetError naming `path` on any problem.
IdxArray read_idx(const std::string& path);

/// Writes `array` as a raw (uncompressed) IDX file, or gzip-compressed when `gzip` is true,
/// atomically (io::atomic_write). Throws DatasetError naming `path` and the system's reason.
void write_idx(const std::string& path, const IdxArray& array, bool gzip = false);

/// The array as a tensor of `dtype` and the file's dimensions, each element multiplied by `scale`
/// (e.g. 1/255 to bring image bytes into [0, 1]). int64 requires integer element types.
Tensor idx_to_tensor(const IdxArray& array, DType dtype, double scale = 1.0);

}  // namespace tapegrad::datasets
