#include "datasets/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <sstream>

#include "datasets/deflate.hpp"
#include "autograd/file_io.hpp"

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
void swap_elements(uint8_t* bytes, uint64_t size, size_t elem) {
  if constexpr (std::endian::native == std::endian::big) return;
  if (elem == 1) return;
  for (uint64_t i = 0; i + elem <= size; i += elem) std::reverse(bytes + i, bytes + i + elem);
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

// The bytes of an IDX file in order: the file itself, or what its gzip members decompress to.
struct IdxReader::Source {
  io::ReadFile file;
  std::string path;
  bool gzip = false;
  bool ended = false;  // gzip: the last member ended and no byte follows it
  z_stream z{};
  std::vector<uint8_t> in;  // compressed bytes read from the file, z.next_in into it

  explicit Source(const std::string& p) : file(p), path(p) {
    if (!file.ok()) throw DatasetError("tapegrad::datasets::read_idx: " + file.error());
    uint8_t magic[2];
    gzip = file.size() >= 2 && file.read_at(0, magic, 2) && magic[0] == 0x1f && magic[1] == 0x8b;
    if (!gzip) return;
    in.resize(size_t{1} << 17);
    if (inflateInit2(&z, 15 + 16) != Z_OK) fail(path, "cannot start zlib decompression");
  }
  ~Source() {
    if (gzip) inflateEnd(&z);
  }

  // Appends file bytes to the unconsumed input; false at the end of the file.
  bool refill() {
    if (z.avail_in) std::memmove(in.data(), z.next_in, z.avail_in);  // next_in is null before the first read
    const int64_t got = file.read_some(in.data() + z.avail_in, in.size() - z.avail_in);
    if (got < 0) fail(path, file.error());
    z.next_in = in.data();
    z.avail_in += static_cast<uInt>(got);
    return got > 0;
  }

  // After a member's end: another member follows (its magic bytes), or nothing, or garbage.
  void next_member() {
    while (z.avail_in < 2 && refill()) {
    }
    if (z.avail_in == 0) {
      ended = true;
    } else if (z.avail_in >= 2 && z.next_in[0] == 0x1f && z.next_in[1] == 0x8b) {
      inflateReset(&z);
    } else {
      fail(path, "trailing data after the gzip stream (bytes that are not another gzip member)");
    }
  }

  // Up to n bytes; fewer only where the data ends.
  uint64_t read(uint8_t* dst, uint64_t n) {
    uint64_t done = 0;
    while (done < n && !gzip) {
      const int64_t got = file.read_some(dst + done, n - done);
      if (got < 0) fail(path, file.error());
      if (got == 0) break;
      done += static_cast<uint64_t>(got);
    }
    while (done < n && gzip && !ended) {
      if (z.avail_in == 0 && !refill()) fail(path, "corrupt or unreadable data (the gzip stream ends early)");
      z.next_out = dst + done;
      z.avail_out = static_cast<uInt>(std::min<uint64_t>(n - done, 1u << 30));
      const uInt before = z.avail_out;
      const int r = inflate(&z, Z_NO_FLUSH);
      done += before - z.avail_out;
      if (r == Z_STREAM_END) next_member();
      else if (r != Z_OK && r != Z_BUF_ERROR)
        fail(path, std::string("corrupt or unreadable data (") + (z.msg ? z.msg : "zlib error") + ")");
    }
    return done;
  }
};

IdxReader::IdxReader(const std::string& path) : source_(std::make_unique<Source>(path)), path_(path) {
  // bytes 0..3: 0, 0, type, rank
  uint8_t magic[4];
  uint64_t got = source_->read(magic, 4);
  if (got < 4) fail(path, "too short for an IDX header (" + std::to_string(got) + " bytes)");
  if (magic[0] != 0 || magic[1] != 0 || !valid_type(magic[2]) || magic[3] == 0 || magic[3] > 8) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%02x%02x%02x%02x", magic[0], magic[1], magic[2], magic[3]);
    fail(path, std::string("bad magic number ") + hex +
                   " (expected 0x0000TTDD: two zero bytes, a known element type TT, a rank DD of 1..8); "
                   "not an IDX file");
  }
  type_ = static_cast<IdxType>(magic[2]);
  const size_t rank = magic[3];
  uint8_t raw_dims[32];
  got = source_->read(raw_dims, 4 * rank);
  if (got < 4 * rank) fail(path, "truncated header: " + std::to_string(rank) + " dimensions announced");
  payload_ = idx_type_size(type_);
  for (size_t d = 0; d < rank; ++d) {
    const uint8_t* p = raw_dims + 4 * d;
    uint64_t v = (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8) | p[3];
    dims_.push_back(static_cast<int64_t>(v));
    // Overflow-safe: check before multiplying (v < 2^32, payload ≤ kMaxIdxPayload ≤ 2^32).
    if (v != 0 && payload_ > kMaxIdxPayload / v) {
      fail(path, "header dimensions " + dims_string(dims_) + "... describe more than 4 GiB; corrupt header");
    }
    payload_ *= v;
  }
  const uint64_t header = 4 + 4 * rank, file_size = source_->file.size();
  if (!source_->gzip && file_size != header + payload_) {
    fail(path, "size mismatch: header says " + std::string(idx_type_name(type_)) + " " + dims_string(dims_) +
                   " = " + std::to_string(header + payload_) + " bytes, the file has " + std::to_string(file_size) +
                   (file_size < header + payload_ ? " (truncated)" : " (trailing data)"));
  }
}

IdxReader::~IdxReader() = default;

int64_t IdxReader::numel() const {
  int64_t n = 1;
  for (auto d : dims_) n *= d;
  return n;
}

void IdxReader::finish(uint8_t* data, uint64_t have) {
  if (have < payload_) {
    fail(path_, "truncated: header says " + dims_string(dims_) + " " + idx_type_name(type_) + " = " +
                    std::to_string(payload_) + " payload bytes, only " + std::to_string(have) + " present");
  }
  uint8_t extra;
  if (source_->read(&extra, 1) != 0)
    fail(path_, "trailing data after the " + std::to_string(payload_) + " payload bytes of " + dims_string(dims_));
  swap_elements(data, payload_, idx_type_size(type_));
}

void IdxReader::read_into(uint8_t* dst) { finish(dst, source_->read(dst, payload_)); }

std::vector<uint8_t> IdxReader::read_all() {
  // Raw files were size-checked against the header; compressed ones grow with the bytes really
  // decompressed: each read asks for at most as much again as is already there (64 KiB at first),
  // so a lying header costs at most twice the data the stream really holds.
  std::vector<uint8_t> out;
  if (!source_->gzip) out.reserve(payload_);
  uint64_t have = 0;
  while (have < payload_) {
    const uint64_t chunk = source_->gzip ? std::max<uint64_t>(have, uint64_t{1} << 16) : payload_;
    const uint64_t want = std::min<uint64_t>(payload_ - have, chunk);
    out.resize(have + want);
    const uint64_t n = source_->read(out.data() + have, want);
    have += n;
    if (n < want) break;  // truncated: finish says so
  }
  finish(out.data(), have);
  return out;
}

IdxArray read_idx(const std::string& path) {
  IdxReader reader(path);
  IdxArray out;
  out.type = reader.type();
  out.dims = reader.dims();
  out.bytes = reader.read_all();
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
    if (d < 0 || d > int64_t{0xffffffff})
      throw DatasetError("write_idx '" + path + "': dimension " + std::to_string(d) + " does not fit IDX's 32 bits");
    auto v = static_cast<uint32_t>(d);
    buf.insert(buf.end(), {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)});
  }
  const size_t header = buf.size();
  buf.insert(buf.end(), array.bytes.begin(), array.bytes.end());
  swap_elements(buf.data() + header, buf.size() - header, elem);
  if (gzip) buf = detail::deflate_bytes(buf, 15 + 16, "write_idx '" + path + "'");
  try {
    io::atomic_write(path, {{reinterpret_cast<const char*>(buf.data()), buf.size()}}, "tapegrad::datasets::write_idx");
  } catch (const std::runtime_error& e) {
    throw DatasetError(e.what());
  }
}

Tensor idx_to_tensor(const IdxArray& array, DType dtype, double scale) {
  Shape shape(array.dims);
  if (dtype == DType::b8) throw DatasetError("idx_to_tensor: cannot convert to bool (use int64, float32 or float64)");
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
