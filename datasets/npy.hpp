#pragma once
/// \file npy.hpp
/// NumPy's .npy and .npz files (numpy.save, numpy.savez, numpy.savez_compressed), read and written,
/// so data prepared in Python trains directly:
///
///     # Python                                   // C++
///     np.savez("data.npz", x=x, y=y)             auto arrays = datasets::load_npz("data.npz");
///                                                Tensor x = find_array(arrays, "x");  // file order kept
///
/// **.npy** (format versions 1.0, 2.0 and 3.0):
///
///     "\x93NUMPY" major minor   header length (u16 LE in 1.0, u32 LE in 2.0 / 3.0)
///     header: a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
///             padded with spaces and a newline (latin-1 in 1.0 / 2.0, UTF-8 in 3.0)
///     then the elements, numel · itemsize bytes
///
/// Element types and the tensors they load as (npy_to_tensor):
///
///     descr          NpyType   tensor dtype
///     '<f4' / '>f4'  f32       float32
///     '<f8' / '>f8'  f64       float64
///     '<i8' / '>i8'  i64       int64
///     '|u1'          u8        int64 (tapegrad has no uint8; exact, so class labels work as they
///                              are; pass a dtype to get float32 pixels directly)
///     '|b1'          b1        bool (each byte must be 0 or 1)
///
/// Big-endian files ('>f4', as written by a big-endian machine or arr.astype('>f4')) are converted
/// to host byte order. fortran_order True is supported: the elements are transposed into tapegrad's
/// row-major (C) order, so the tensor equals the NumPy array element by element. Any rank works,
/// 0-d included (numpy.save of a scalar gives shape ()). Other dtypes (int32, float16, strings,
/// structured and object arrays) are refused with a message saying which descr was found and how to
/// convert (arr.astype(np.float32)). Writers always produce version 1.0 (2.0 when the header needs
/// it), little-endian, C order, as numpy.save does.
///
/// **.npz**: a zip archive of "<name>.npy" members, stored (savez) or deflate-compressed
/// (savez_compressed); zip64 records (NumPy forces them on every member) are read. The writer
/// writes zip64 records always (one code path, no 4 GiB limit) with fixed timestamps, so the same
/// arrays give the same bytes; numpy.load reads them.
///
/// Everything read is validated before it is trusted, as the IDX reader is (idx.hpp): a bad magic,
/// an unknown version, a header dict that is malformed or lacks a key or has an extra or repeated
/// one, a shape that is not a tuple of non-negative integers or whose byte count overflows 64 bits,
/// a payload shorter or longer than the header says, a zip whose directory, local headers, sizes,
/// CRC-32 or member ranges disagree: each throws DatasetError naming the file (and the member) and
/// what is wrong. No payload is allocated before its size was checked against the bytes the file
/// really holds; a compressed member grows with the bytes really decompressed, so a lying size
/// costs at most twice the real data. Only regular files are opened (io::ReadFile).
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"
#include "datasets/idx.hpp"  // DatasetError

namespace tapegrad::datasets {

/// The .npy element types tapegrad reads and writes.
enum class NpyType : uint8_t {
  f32,  ///< float32, descr "<f4"
  f64,  ///< float64, descr "<f8"
  i64,  ///< int64, descr "<i8"
  u8,   ///< uint8, descr "|u1"
  b1,   ///< bool, descr "|b1" (each byte 0 or 1)
};

/// Bytes per element: 4, 8, 8, 1, 1.
size_t npy_type_size(NpyType type);
/// NumPy's names: "float32", "float64", "int64", "uint8", "bool".
const char* npy_type_name(NpyType type);
/// The little-endian descr written for `type`: "<f4", "<f8", "<i8", "|u1", "|b1".
const char* npy_descr(NpyType type);

/// A decoded .npy array: element type, shape (empty for 0-d) and elements in row-major (C) order
/// and host byte order.
struct NpyArray {
  NpyType type = NpyType::f32;  ///< the element type
  std::vector<int64_t> shape;   ///< the dimensions, each >= 0; empty for a 0-d array
  std::vector<uint8_t> bytes;  ///< numel() · npy_type_size(type) bytes
  /// The product of the shape (1 for 0-d).
  int64_t numel() const;
};

/// Named arrays in file order (the same type as nn::NamedTensors).
using NamedArrays = std::vector<std::pair<std::string, Tensor>>;
/// Named raw arrays in file order.
using NamedNpyArrays = std::vector<std::pair<std::string, NpyArray>>;

/// The largest .npy header accepted (1 MiB; NumPy's own reader stops at 10,000 bytes by default).
inline constexpr uint64_t kMaxNpyHeader = uint64_t{1} << 20;
/// The largest rank accepted (NumPy 1.x allows 32, NumPy 2 allows 64).
inline constexpr size_t kMaxNpyRank = 64;

// ---- .npy ---------------------------------------------------------------------------------------

/// Reads an .npy file. Throws DatasetError naming `path` on any problem.
NpyArray read_npy(const std::string& path);
/// Decodes an .npy file held in memory; `name` is what error messages call it.
NpyArray parse_npy(const uint8_t* data, size_t size, const std::string& name);
/// The bytes of an .npy file holding `array` (version 1.0, or 2.0 for a header over 65535 bytes).
/// Throws DatasetError when the byte count does not match the shape.
std::vector<uint8_t> npy_bytes(const NpyArray& array);
/// Writes `array` as an .npy file, atomically (io::atomic_write).
void write_npy(const std::string& path, const NpyArray& array);

/// The array as a tensor of its natural dtype (the table above), or of `dtype` when given:
/// any element type converts to float32 / float64 / int64 by value (uint8 pixels straight to
/// float32, say), except floating to int64 (refused: it would truncate) and anything to bool
/// other than bool itself. Throws DatasetError for a refused conversion.
Tensor npy_to_tensor(const NpyArray& array, std::optional<DType> dtype = std::nullopt);
/// A tensor as an array of its natural type (float32 → f32, float64 → f64, int64 → i64, bool → b1),
/// or of `type` when given: that type, or u8 from an int64 or bool tensor whose values are all in
/// 0..255 (otherwise DatasetError naming the first value out of range). Other conversions: convert
/// the tensor first (t.to(DType::f32)).
NpyArray tensor_to_npy(const Tensor& tensor, std::optional<NpyType> type = std::nullopt);

/// read_npy then npy_to_tensor.
Tensor load_npy(const std::string& path, std::optional<DType> dtype = std::nullopt);
/// tensor_to_npy then write_npy.
void save_npy(const std::string& path, const Tensor& tensor, std::optional<NpyType> type = std::nullopt);

// ---- .npz ---------------------------------------------------------------------------------------

/// Reads every member of an .npz file, in the order of its zip directory, named without ".npy"
/// (as numpy.load's NpzFile names them). Members that are not "*.npy" files, encrypted members,
/// compression other than stored / deflate, and a repeated name are errors.
NamedNpyArrays read_npz(const std::string& path);
/// read_npz with each array converted by npy_to_tensor (natural dtypes).
NamedArrays load_npz(const std::string& path);
/// Writes `arrays` as an .npz file, members "<name>.npy" in the given order, stored or (when
/// `compressed`) deflate-compressed as numpy.savez / numpy.savez_compressed write them, atomically.
/// Names must be non-empty and distinct.
void write_npz(const std::string& path, const NamedNpyArrays& arrays, bool compressed = false);
/// write_npz of tensor_to_npy of each tensor (natural types).
void save_npz(const std::string& path, const NamedArrays& tensors, bool compressed = false);

/// The tensor called `name`; throws DatasetError listing the names there are.
const Tensor& find_array(const NamedArrays& arrays, const std::string& name);

}  // namespace tapegrad::datasets
