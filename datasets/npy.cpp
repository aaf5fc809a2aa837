// .npy: header parsing and writing, payload checks, tensor conversion. The zip container of .npz
// files is in npy_zip.cpp.
#include "datasets/npy.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <sstream>

#include "autograd/file_io.hpp"
#include "datasets/npy_detail.hpp"

namespace tapegrad::datasets {
namespace {

constexpr uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

[[noreturn]] void fail(const std::string& name, const std::string& what) { throw DatasetError(name + ": " + what); }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '(';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << (shape.size() == 1 ? ",)" : ")");
  return os.str();
}

// A strict reader of the header dict NumPy writes: {'key': value, ...} with string, True / False
// and tuple-of-integer values. Anything else (nested containers, expressions, escapes) is an error.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& name) : s_(text), name_(name) {}

  npy_detail::Header parse() {
    npy_detail::Header h;
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    skip_ws();
    expect('{');
    skip_ws();
    while (peek() != '}') {
      const std::string key = string_literal();
      skip_ws();
      expect(':');
      skip_ws();
      auto once = [&](bool& seen) {
        if (seen) bad("the key '" + key + "' appears twice");
        seen = true;
      };
      if (key == "descr") {
        once(seen_descr);
        if (peek() != '\'' && peek() != '"')
          bad("'descr' is not a string (structured dtypes are not supported; save plain arrays)");
        h.type = descr_type(string_literal(), h.big_endian);
      } else if (key == "fortran_order") {
        once(seen_fortran);
        h.fortran_order = boolean();
      } else if (key == "shape") {
        once(seen_shape);
        h.shape = tuple();
      } else {
        bad("unexpected key '" + key + "' (an .npy header has exactly 'descr', 'fortran_order' and 'shape')");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        skip_ws();
      } else if (peek() != '}') {
        bad("expected ',' or '}' at header offset " + std::to_string(pos_));
      }
    }
    ++pos_;
    skip_ws();
    if (pos_ != s_.size()) bad("unexpected text after the header dict at offset " + std::to_string(pos_));
    if (!seen_descr || !seen_fortran || !seen_shape)
      bad(std::string("the header lacks the key '") +
          (!seen_descr     ? "descr"
           : !seen_fortran ? "fortran_order"
                           : "shape") +
          "'");
    return h;
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    const std::string quoted = s_.size() > 120 ? s_.substr(0, 120) + "..." : s_;
    fail(name_, "bad .npy header: " + what + " (header: " + quoted + ")");
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) ++pos_;
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "' at offset " + std::to_string(pos_));
    ++pos_;
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string at offset " + std::to_string(pos_));
    const size_t end = s_.find(q, pos_ + 1);
    if (end == std::string::npos) bad("unterminated string at offset " + std::to_string(pos_));
    std::string v = s_.substr(pos_ + 1, end - pos_ - 1);
    if (v.find('\\') != std::string::npos) bad("escape sequences in strings are not supported");
    pos_ = end + 1;
    return v;
  }
  bool boolean() {
    if (s_.compare(pos_, 4, "True") == 0) return pos_ += 4, true;
    if (s_.compare(pos_, 5, "False") == 0) return pos_ += 5, false;
    bad("'fortran_order' is not True or False");
  }
  std::vector<int64_t> tuple() {
    if (peek() != '(') bad("'shape' is not a tuple");
    ++pos_;
    std::vector<int64_t> dims;
    bool trailing_comma = false;
    skip_ws();
    while (peek() != ')') {
      if (peek() < '0' || peek() > '9') bad("'shape' holds something other than a non-negative integer");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const int digit = peek() - '0';
        if (v > (INT64_MAX - digit) / 10) bad("a dimension of 'shape' overflows 64 bits");
        v = v * 10 + digit;
        ++pos_;
      }
      dims.push_back(v);
      if (dims.size() > kMaxNpyRank) bad("'shape' has more than " + std::to_string(kMaxNpyRank) + " dimensions");
      skip_ws();
      trailing_comma = peek() == ',';
      if (trailing_comma) {
        ++pos_;
        skip_ws();
      } else if (peek() != ')') {
        bad("expected ',' or ')' in 'shape' at offset " + std::to_string(pos_));
      }
    }
    ++pos_;
    if (dims.size() == 1 && !trailing_comma) bad("'shape' (n) is not a tuple; a 1-d shape is written (n,)");
    return dims;
  }
  NpyType descr_type(const std::string& d, bool& big_endian) const {
    const std::string supported =
        "; tapegrad reads float32 '<f4', float64 '<f8', int64 '<i8' (either byte order), uint8 '|u1' and bool '|b1': "
        "convert with arr.astype(np.float32) or the like";
    if (d.size() != 3) bad("dtype '" + d + "' is not supported" + supported);
    const char order = d[0];
    const std::string code = d.substr(1);
    NpyType t;
    if (code == "f4")
      t = NpyType::f32;
    else if (code == "f8")
      t = NpyType::f64;
    else if (code == "i8")
      t = NpyType::i64;
    else if (code == "u1")
      t = NpyType::u8;
    else if (code == "b1")
      t = NpyType::b1;
    else
      bad("dtype '" + d + "' is not supported" + supported);
    const bool one_byte = npy_type_size(t) == 1;
    if (order == '>' && !one_byte)
      big_endian = true;
    else if (!(order == '<' || (one_byte && (order == '|' || order == '>' || order == '='))))
      bad("dtype '" + d + "': byte order '" + std::string(1, order) + "' is not supported (expected '<' or '>')");
    return t;
  }

  const std::string& s_;
  const std::string& name_;
  size_t pos_ = 0;
};

uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// Reverses the bytes of every element.
void swap_elements(uint8_t* bytes, uint64_t size, size_t elem) {
  for (uint64_t i = 0; i + elem <= size; i += elem) std::reverse(bytes + i, bytes + i + elem);
}

// Fortran (column-major) order → C order: element (i0, ..., ik) sits at Σ i_d · Π_{e<d} shape[e].
std::vector<uint8_t> fortran_to_c(const std::vector<uint8_t>& src, const std::vector<int64_t>& shape, size_t elem) {
  std::vector<uint8_t> dst(src.size());
  const size_t rank = shape.size();
  std::vector<int64_t> index(rank, 0), stride(rank, 1);
  for (size_t d = 1; d < rank; ++d) stride[d] = stride[d - 1] * shape[d - 1];
  const size_t n = src.size() / elem;
  int64_t offset = 0;  // of the current C-order index in the Fortran layout
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(dst.data() + i * elem, src.data() + static_cast<size_t>(offset) * elem, elem);
    for (size_t d = rank; d-- > 0;) {  // odometer over the C-order index, last dimension fastest
      ++index[d];
      offset += stride[d];
      if (index[d] < shape[d]) break;
      offset -= stride[d] * index[d];
      index[d] = 0;
    }
  }
  return dst;
}

DType natural_dtype(NpyType t) {
  switch (t) {
    case NpyType::f32:
      return DType::f32;
    case NpyType::f64:
      return DType::f64;
    case NpyType::i64:
    case NpyType::u8:
      return DType::i64;
    case NpyType::b1:
      return DType::b8;
  }
  return DType::f32;
}

template <class From, class To>
void convert(const uint8_t* src, To* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    From v;
    std::memcpy(&v, src + static_cast<size_t>(i) * sizeof(From), sizeof(From));
    dst[i] = static_cast<To>(v);
  }
}

template <class To>
void convert_from(const NpyArray& a, To* dst) {
  const int64_t n = a.numel();
  if (natural_dtype(a.type) == dtype_of<To>() && npy_type_size(a.type) == sizeof(To)) {
    if (n > 0) std::memcpy(dst, a.bytes.data(), a.bytes.size());  // same representation: one copy
    return;
  }
  switch (a.type) {
    case NpyType::f32:
      return convert<float>(a.bytes.data(), dst, n);
    case NpyType::f64:
      return convert<double>(a.bytes.data(), dst, n);
    case NpyType::i64:
      return convert<int64_t>(a.bytes.data(), dst, n);
    case NpyType::u8:
      return convert<uint8_t>(a.bytes.data(), dst, n);
    case NpyType::b1:
      return convert<bool>(a.bytes.data(), dst, n);
  }
}

}  // namespace

namespace npy_detail {

Header parse_header(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0) fail(name, "empty file; not an .npy file");
  if (std::memcmp(data, kMagic, std::min<size_t>(size, 6)) != 0)
    fail(name, "bad magic (expected \"\\x93NUMPY\"); not an .npy file");
  if (size < 10) fail(name, "too short for an .npy header (" + std::to_string(size) + " bytes)");
  const uint8_t major = data[6], minor = data[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    fail(name, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                   " (known: 1.0, 2.0, 3.0)");
  const size_t prefix = major == 1 ? 10 : 12;
  if (size < prefix) fail(name, "too short for an .npy header (" + std::to_string(size) + " bytes)");
  const uint64_t length = major == 1 ? uint64_t{data[8]} | uint64_t{data[9]} << 8 : le32(data + 8);
  if (length > kMaxNpyHeader)
    fail(name, "header length " + std::to_string(length) + " is over the limit of " + std::to_string(kMaxNpyHeader) +
                   " bytes; corrupt header");
  if (size < prefix + length)
    fail(name, "truncated header: " + std::to_string(length) + " header bytes announced, " +
                   std::to_string(size - prefix) + " present");
  const std::string text(reinterpret_cast<const char*>(data) + prefix, length);
  Header h = HeaderParser(text, name).parse();
  h.header_bytes = prefix + length;
  // The product of the non-zero dimensions, in bytes, must fit PTRDIFF_MAX (as Tensor::empty
  // requires): a zero dimension does not excuse (0, 2^62, 2^62), which NumPy refuses too.
  const uint64_t elem = npy_type_size(h.type), limit = static_cast<uint64_t>(PTRDIFF_MAX);
  uint64_t nonzero = elem;
  bool zero = false;
  for (int64_t d : h.shape) {
    const auto v = static_cast<uint64_t>(d);
    if (v == 0) {
      zero = true;
    } else {
      if (nonzero > limit / v)
        fail(name, "shape " + shape_string(h.shape) + " of " + npy_type_name(h.type) +
                       " describes more bytes than fit in memory; corrupt header");
      nonzero *= v;
    }
  }
  const uint64_t bytes = zero ? 0 : nonzero;
  h.payload_bytes = bytes;
  return h;
}

void check_payload_size(const Header& h, uint64_t have, const std::string& name) {
  if (have == h.payload_bytes) return;
  fail(name, std::string(have < h.payload_bytes ? "truncated" : "trailing data") + ": the header says " +
                 npy_type_name(h.type) + " " + shape_string(h.shape) + " = " + std::to_string(h.payload_bytes) +
                 " payload bytes, the file has " + std::to_string(have));
}

NpyArray finish(const Header& h, std::vector<uint8_t> payload, const std::string& name) {
  const size_t elem = npy_type_size(h.type);
  if (h.big_endian && std::endian::native == std::endian::little && elem > 1)
    swap_elements(payload.data(), payload.size(), elem);
  if (h.type == NpyType::b1) {
    for (size_t i = 0; i < payload.size(); ++i)
      if (payload[i] > 1)
        fail(name, "bool element " + std::to_string(i) + " is the byte " + std::to_string(payload[i]) +
                       " (a NumPy bool is 0 or 1)");
  }
  NpyArray out;
  out.type = h.type;
  out.shape = h.shape;
  out.bytes = h.fortran_order && h.shape.size() > 1 ? fortran_to_c(payload, h.shape, elem) : std::move(payload);
  return out;
}

}  // namespace npy_detail

size_t npy_type_size(NpyType type) {
  switch (type) {
    case NpyType::f32:
      return 4;
    case NpyType::f64:
    case NpyType::i64:
      return 8;
    case NpyType::u8:
    case NpyType::b1:
      return 1;
  }
  return 0;
}

const char* npy_type_name(NpyType type) {
  switch (type) {
    case NpyType::f32:
      return "float32";
    case NpyType::f64:
      return "float64";
    case NpyType::i64:
      return "int64";
    case NpyType::u8:
      return "uint8";
    case NpyType::b1:
      return "bool";
  }
  return "?";
}

const char* npy_descr(NpyType type) {
  switch (type) {
    case NpyType::f32:
      return "<f4";
    case NpyType::f64:
      return "<f8";
    case NpyType::i64:
      return "<i8";
    case NpyType::u8:
      return "|u1";
    case NpyType::b1:
      return "|b1";
  }
  return "?";
}

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

NpyArray parse_npy(const uint8_t* data, size_t size, const std::string& name) {
  const npy_detail::Header h = npy_detail::parse_header(data, size, name);
  npy_detail::check_payload_size(h, size - h.header_bytes, name);
  return npy_detail::finish(h, std::vector<uint8_t>(data + h.header_bytes, data + size), name);
}

namespace {
// An .npy file opened and its header read and checked against the file's size (nothing else read).
struct OpenNpy {
  std::string name;
  io::ReadFile file;
  npy_detail::Header header;

  explicit OpenNpy(const std::string& path) : name("NPY file '" + path + "'"), file(path) {
    if (!file.ok()) throw DatasetError("tapegrad::datasets::read_npy: " + file.error());
    // The prefix, then the header it announces (bounded by kMaxNpyHeader), then the payload once
    // its size is known to match the file's.
    std::vector<uint8_t> head(static_cast<size_t>(std::min<uint64_t>(file.size(), 12)));
    if (!file.read_at(0, head.data(), head.size())) fail(name, file.error());
    if (head.size() >= 10 && std::memcmp(head.data(), kMagic, 6) == 0) {
      const uint64_t length = head[6] == 1        ? uint64_t{head[8]} | uint64_t{head[9]} << 8
                              : head.size() >= 12 ? le32(head.data() + 8)
                                                  : 0;
      const uint64_t want = std::min<uint64_t>(file.size(), (head[6] == 1 ? 10 : 12) + std::min(length, kMaxNpyHeader));
      head.resize(static_cast<size_t>(want));
      if (!file.read_at(0, head.data(), head.size())) fail(name, file.error());
    }
    header = npy_detail::parse_header(head.data(), head.size(), name);
    npy_detail::check_payload_size(header, file.size() - header.header_bytes, name);
  }
  void read_payload(void* dst) {
    if (header.payload_bytes && !file.read_at(header.header_bytes, dst, header.payload_bytes)) fail(name, file.error());
  }
};
}  // namespace

NpyArray read_npy(const std::string& path) {
  OpenNpy npy(path);
  std::vector<uint8_t> payload(static_cast<size_t>(npy.header.payload_bytes));
  npy.read_payload(payload.data());
  return npy_detail::finish(npy.header, std::move(payload), npy.name);
}

std::vector<uint8_t> npy_bytes(const NpyArray& array) {
  const uint64_t elem = npy_type_size(array.type);
  uint64_t numel = 1;
  for (int64_t d : array.shape) {
    if (d < 0) throw DatasetError("npy_bytes: negative dimension in shape " + shape_string(array.shape));
    if (d != 0 && numel > UINT64_MAX / elem / static_cast<uint64_t>(d))
      throw DatasetError("npy_bytes: shape " + shape_string(array.shape) + " overflows");
    numel *= static_cast<uint64_t>(d);
  }
  if (array.bytes.size() != numel * elem)
    throw DatasetError("npy_bytes: " + std::to_string(array.bytes.size()) + " bytes do not match " +
                       npy_type_name(array.type) + " " + shape_string(array.shape) + " (" +
                       std::to_string(numel * elem) + " bytes)");
  std::string dict = std::string("{'descr': '") + npy_descr(array.type) +
                     "', 'fortran_order': False, 'shape': " + shape_string(array.shape) + ", }";
  // numpy.save pads the header with spaces so that the data starts on a multiple of 64 bytes.
  const bool v2 = dict.size() + 1 + 10 > 65535;
  const size_t prefix = v2 ? 12 : 10;
  dict.append((64 - (prefix + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  std::vector<uint8_t> out(kMagic, kMagic + 6);
  out.push_back(v2 ? 2 : 1);
  out.push_back(0);
  const auto length = static_cast<uint32_t>(dict.size());
  for (size_t i = 0; i < (v2 ? 4u : 2u); ++i) out.push_back(static_cast<uint8_t>(length >> (8 * i)));
  out.insert(out.end(), dict.begin(), dict.end());
  const size_t header = out.size();
  out.insert(out.end(), array.bytes.begin(), array.bytes.end());
  if (std::endian::native == std::endian::big && elem > 1) swap_elements(out.data() + header, numel * elem, elem);
  return out;
}

void write_npy(const std::string& path, const NpyArray& array) {
  const std::vector<uint8_t> bytes = npy_bytes(array);
  try {
    io::atomic_write(path, {{reinterpret_cast<const char*>(bytes.data()), bytes.size()}},
                     "tapegrad::datasets::write_npy");
  } catch (const std::runtime_error& e) {
    throw DatasetError(e.what());
  }
}

Tensor npy_to_tensor(const NpyArray& array, std::optional<DType> dtype) {
  const DType to = dtype.value_or(natural_dtype(array.type));
  const bool floating_source = array.type == NpyType::f32 || array.type == NpyType::f64;
  if (to == DType::b8 && array.type != NpyType::b1)
    throw DatasetError(std::string("npy_to_tensor: cannot convert ") + npy_type_name(array.type) +
                       " to bool (compare instead: gt(t, 0))");
  if (to == DType::i64 && floating_source)
    throw DatasetError(std::string("npy_to_tensor: cannot convert ") + npy_type_name(array.type) +
                       " to int64 (it would truncate; load it as floating and convert explicitly)");
  if (array.bytes.size() != static_cast<size_t>(array.numel()) * npy_type_size(array.type))
    throw DatasetError("npy_to_tensor: " + std::to_string(array.bytes.size()) + " bytes do not match " +
                       npy_type_name(array.type) + " " + shape_string(array.shape));
  Tensor out = Tensor::empty(Shape(array.shape), to);
  switch (to) {
    case DType::f32:
      convert_from(array, out.mutable_data<float>());
      break;
    case DType::f64:
      convert_from(array, out.mutable_data<double>());
      break;
    case DType::i64:
      convert_from(array, out.mutable_data<int64_t>());
      break;
    case DType::b8:
      if (!array.bytes.empty()) std::memcpy(out.mutable_data<bool>(), array.bytes.data(), array.bytes.size());
      break;
  }
  return out;
}

NpyArray tensor_to_npy(const Tensor& tensor, std::optional<NpyType> type) {
  const DType d = tensor.dtype();
  const NpyType natural = d == DType::f32   ? NpyType::f32
                          : d == DType::f64 ? NpyType::f64
                          : d == DType::i64 ? NpyType::i64
                                            : NpyType::b1;
  NpyArray out;
  out.type = type.value_or(natural);
  out.shape.assign(tensor.shape().begin(), tensor.shape().end());
  const auto n = static_cast<size_t>(tensor.numel());
  if (out.type == natural) {
    const void* data = d == DType::f32   ? static_cast<const void*>(tensor.data<float>())
                       : d == DType::f64 ? static_cast<const void*>(tensor.data<double>())
                       : d == DType::i64 ? static_cast<const void*>(tensor.data<int64_t>())
                                         : static_cast<const void*>(tensor.data<bool>());
    const auto* src = static_cast<const uint8_t*>(data);
    out.bytes.assign(src, src + n * dtype_size(d));
    return out;
  }
  if (out.type != NpyType::u8 || (d != DType::i64 && d != DType::b8))
    throw DatasetError(std::string("tensor_to_npy: cannot write a ") + dtype_name(d) + " tensor as " +
                       npy_type_name(out.type) + " (convert the tensor first, e.g. t.to(DType::" +
                       (out.type == NpyType::f64   ? "f64"
                        : out.type == NpyType::i64 ? "i64"
                                                   : "f32") +
                       "))");
  out.bytes.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t v = d == DType::b8 ? int64_t{tensor.data<bool>()[i]} : tensor.data<int64_t>()[i];
    if (v < 0 || v > 255)
      throw DatasetError("tensor_to_npy: value " + std::to_string(v) + " at flat index " + std::to_string(i) +
                         " does not fit uint8 (0..255)");
    out.bytes[i] = static_cast<uint8_t>(v);
  }
  return out;
}

Tensor load_npy(const std::string& path, std::optional<DType> dtype) {
  OpenNpy npy(path);
  const npy_detail::Header& h = npy.header;
  const DType natural = natural_dtype(h.type);
  // The common case, a little-endian C-order file of the tensor's own representation: read straight
  // into the tensor (one pass over the data, one allocation); anything else converts through read_npy.
  if (dtype.value_or(natural) != natural || npy_type_size(h.type) != dtype_size(natural) || h.big_endian ||
      (h.fortran_order && h.shape.size() > 1) || h.type == NpyType::b1) {  // bools are checked first
    std::vector<uint8_t> payload(static_cast<size_t>(h.payload_bytes));
    npy.read_payload(payload.data());
    return npy_to_tensor(npy_detail::finish(h, std::move(payload), npy.name), dtype);
  }
  Tensor out = Tensor::empty(Shape(h.shape), natural);
  npy.read_payload(natural == DType::f32   ? static_cast<void*>(out.mutable_data<float>())
                   : natural == DType::f64 ? static_cast<void*>(out.mutable_data<double>())
                                           : static_cast<void*>(out.mutable_data<int64_t>()));
  return out;
}

void save_npy(const std::string& path, const Tensor& tensor, std::optional<NpyType> type) {
  write_npy(path, tensor_to_npy(tensor, type));
}

const Tensor& find_array(const NamedArrays& arrays, const std::string& name) {
  std::string names;
  for (const auto& [n, t] : arrays) {
    if (n == name) return t;
    names += (names.empty() ? "'" : ", '") + n + "'";
  }
  throw DatasetError("find_array: no array named '" + name + "' (there are: " + (names.empty() ? "none" : names) + ")");
}

}  // namespace tapegrad::datasets
