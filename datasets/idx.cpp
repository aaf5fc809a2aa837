#include "datasets/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>

namespace tapegrad::datasets {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw DatasetError("IDX file '" + path + "': " + what);
}

bool valid_type(uint8_t t) {
  return t == 0x08 || t == 0x09 || t == 0x0B || t == 0x0C || t == 0x0D || t == 0x0E;
}

std::string dims_string(const std::vector<int64_t>& dims) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < dims.size(); ++i) os << (i ? ", " : "") << dims[i];
  os << ']';
  return os.str();
}

// Reverses the byte order of every element (IDX is big-endian) on little-endian hosts.
void swap_elements(std::vector<uint8_t>& bytes, size_t elem) {
  if constexpr (std::endian::native == std::endian::big) return;
  if (elem == 1) return;
  for (size_t i = 0; i + elem <= bytes.size(); i += elem) std::reverse(bytes.begin() + i, bytes.begin() + i + elem);
}

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzCloser>;

// Reads up to n bytes; returns the count, throwing on a decompression error.
size_t read_some(gzFile f, void* dst, size_t n, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
    int got = gzread(f, static_cast<char*>(dst) + done, chunk);
    if (got < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      fail(path, std::string("corrupt or unreadable data (") + (msg ? msg : "zlib error") + ")");
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

}  // namespace

size_t idx_type_size(IdxType type) {
  switch (type) {
    case IdxType::u8:
    case IdxType::i8: return 1;
    case IdxType::i16: return 2;
    case IdxType::i32:
    case IdxType::f32: return 4;
    case IdxType::f64: return 8;
  }
  return 0;
}

const char* idx_type_name(IdxType type) {
  switch (type) {
    case IdxType::u8: return "ubyte";
    case IdxType::i8: return "sbyte";
    case IdxType::i16: return "int16";
    case IdxType::i32: return "int32";
    case IdxType::f32: return "float32";
    case IdxType::f64: return "float64";
  }
  return "?";
}

int64_t IdxArray::numel() const {
  int64_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

double IdxArray::value(int64_t i) const {
  size_t elem = idx_type_size(type);
  if (i < 0 || static_cast<size_t>(i + 1) * elem > bytes.size())
    throw std::out_of_range("IdxArray::value: index " + std::to_string(i) + " out of range");
  const uint8_t* p = bytes.data() + static_cast<size_t>(i) * elem;
  switch (type) {
    case IdxType::u8: return *p;
    case IdxType::i8: return static_cast<int8_t>(*p);
    case IdxType::i16: { int16_t v; std::memcpy(&v, p, 2); return v; }
    case IdxType::i32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case IdxType::f32: { float v; std::memcpy(&v, p, 4); return v; }
    case IdxType::f64: { double v; std::memcpy(&v, p, 8); return v; }
  }
  return 0;
}

IdxArray read_idx(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(path, "no such file");
  if (fs::is_directory(path, ec)) fail(path, "is a directory, expected an IDX file");
  const uint64_t file_size = fs::file_size(path, ec);
  if (ec) fail(path, "cannot determine its size (" + ec.message() + ")");

  GzHandle f(gzopen(path.c_str(), "rb"));
  if (!f) fail(path, std::string("cannot open (") + std::strerror(errno) + ")");
  gzbuffer(f.get(), 1 << 17);

  // bytes 0..3: 0, 0, type, rank
  uint8_t magic[4];
  size_t got = read_some(f.get(), magic, 4, path);
  if (got < 4) fail(path, "too short for an IDX header (" + std::to_string(got) + " bytes)");
  if (magic[0] != 0 || magic[1] != 0 || !valid_type(magic[2]) || magic[3] == 0 || magic[3] > 8) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%02x%02x%02x%02x", magic[0], magic[1], magic[2], magic[3]);
    fail(path, std::string("bad magic number ") + hex +
                   " (expected 0x0000TTDD: two zero bytes, a known element type TT, a rank DD of 1..8); "
                   "not an IDX file");
  }
  IdxArray out;
  out.type = static_cast<IdxType>(magic[2]);
  const size_t rank = magic[3];
  uint8_t raw_dims[32];
  got = read_some(f.get(), raw_dims, 4 * rank, path);
  if (got < 4 * rank) fail(path, "truncated header: " + std::to_string(rank) + " dimensions announced");
  const size_t elem = idx_type_size(out.type);
  uint64_t payload = elem;
  for (size_t d = 0; d < rank; ++d) {
    const uint8_t* p = raw_dims + 4 * d;
    uint64_t v = (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8) | p[3];
    out.dims.push_back(static_cast<int64_t>(v));
    // Overflow-safe: check before multiplying (v < 2^32, payload ≤ kMaxIdxPayload ≤ 2^32).
    if (v != 0 && payload > kMaxIdxPayload / v) {
      fail(path, "header dimensions " + dims_string(out.dims) + "... describe more than 4 GiB; corrupt header");
    }
    payload *= v;
  }
  const uint64_t header = 4 + 4 * rank;
  const bool compressed = gzdirect(f.get()) == 0;
  if (!compressed && file_size != header + payload) {
    fail(path, "size mismatch: header says " + std::string(idx_type_name(out.type)) + " " + dims_string(out.dims) +
                   " = " + std::to_string(header + payload) + " bytes, the file has " + std::to_string(file_size) +
                   (file_size < header + payload ? " (truncated)" : " (trailing data)"));
  }

  // Raw files were size-checked above; compressed ones grow with the bytes really decompressed:
  // each read asks for at most as much again as is already there (64 KiB at first), so a lying
  // header costs at most twice the data the stream really holds.
  if (!compressed) out.bytes.reserve(payload);
  size_t have = 0;
  while (have < payload) {
    const uint64_t chunk = compressed ? std::max<uint64_t>(have, uint64_t{1} << 16) : payload;
    size_t want = static_cast<size_t>(std::min<uint64_t>(payload - have, chunk));
    out.bytes.resize(have + want);
    size_t n = read_some(f.get(), out.bytes.data() + have, want, path);
    have += n;
    if (n < want) {
      fail(path, "truncated: header says " + dims_string(out.dims) + " " + idx_type_name(out.type) + " = " +
                     std::to_string(payload) + " payload bytes, only " + std::to_string(have) + " present");
    }
  }
  uint8_t extra;
  if (read_some(f.get(), &extra, 1, path) != 0) {
    fail(path, "trailing data after the " + std::to_string(payload) + " payload bytes of " + dims_string(out.dims));
  }
  swap_elements(out.bytes, elem);
  return out;
}

void write_idx(const std::string& path, const IdxArray& array, bool gzip) {
  if (array.dims.empty() || array.dims.size() > 8) throw DatasetError("write_idx '" + path + "': rank must be 1..8");
  const size_t elem = idx_type_size(array.type);
  if (array.bytes.size() != static_cast<size_t>(array.numel()) * elem) {
    throw DatasetError("write_idx '" + path + "': " + std::to_string(array.bytes.size()) +
                       " bytes do not match dims " + dims_string(array.dims));
  }
  std::vector<uint8_t> buf{0, 0, static_cast<uint8_t>(array.type), static_cast<uint8_t>(array.dims.size())};
  for (int64_t d : array.dims) {
    auto v = static_cast<uint32_t>(d);
    buf.insert(buf.end(), {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)});
  }
  std::vector<uint8_t> payload = array.bytes;
  swap_elements(payload, elem);
  buf.insert(buf.end(), payload.begin(), payload.end());
  GzHandle f(gzopen(path.c_str(), gzip ? "wb6" : "wbT"));
  if (!f) throw DatasetError("write_idx '" + path + "': cannot open for writing (" + std::strerror(errno) + ")");
  if (gzwrite(f.get(), buf.data(), static_cast<unsigned>(buf.size())) != static_cast<int>(buf.size())) {
    throw DatasetError("write_idx '" + path + "': write failed");
  }
}

Tensor idx_to_tensor(const IdxArray& array, DType dtype, double scale) {
  Shape shape(array.dims);
  Tensor out = Tensor::empty(shape, dtype);
  const int64_t n = array.numel();
  if (dtype == DType::i64) {
    if (array.type == IdxType::f32 || array.type == IdxType::f64)
      throw DatasetError("idx_to_tensor: cannot convert " + std::string(idx_type_name(array.type)) + " to int64");
    int64_t* dst = out.mutable_data<int64_t>();
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<int64_t>(array.value(i) * scale);
  } else if (dtype == DType::f32) {
    float* dst = out.mutable_data<float>();
    const float s = static_cast<float>(scale);
    if (array.type == IdxType::u8) {
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(array.bytes[static_cast<size_t>(i)]) * s;
    } else {
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(array.value(i) * scale);
    }
  } else {
    double* dst = out.mutable_data<double>();
    for (int64_t i = 0; i < n; ++i) dst[i] = array.value(i) * scale;
  }
  return out;
}

}  // namespace tapegrad::datasets
