// safetensors reader and writer. The reader never trusts the file: the header length, every
// offset and every size is checked against the file size (with overflow-safe arithmetic) before
// any byte is copied.
#include "nn/serialize.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

namespace tapegrad::nn {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

constexpr size_t kMaxRank = 64;

const char* st_dtype(DType d) {
  switch (d) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i64: return "I64";
    case DType::b8: return "BOOL";
  }
  throw_unknown_dtype(d);
}

std::runtime_error bad_file(const std::string& path, const std::string& what) {
  return std::runtime_error("tapegrad::nn::load_safetensors: '" + path + "' is not a valid safetensors file: " + what);
}

// Untrusted JSON in a message, cut short.
std::string quoted(const nlohmann::json& v) { return detail::excerpt(v.dump()); }

}  // namespace

void save_safetensors(const NamedTensors& tensors, const std::string& path, const Metadata& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  for (auto& [key, value] : metadata) header["__metadata__"][key] = value;
  uint64_t offset = 0;
  std::set<std::string> names;
  for (auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__" || !names.insert(name).second)
      throw std::invalid_argument("tapegrad::nn::save_safetensors: tensor name '" + detail::excerpt(name) +
                                  "' is empty, reserved or repeated");
    if (!t.defined()) throw std::invalid_argument("tapegrad::nn::save_safetensors: tensor '" + name + "' is undefined");
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
    header[name] = {{"dtype", st_dtype(t.dtype())}, {"shape", t.shape().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // pad so the data section is 8-byte aligned
  const uint64_t n = json.size();
  std::vector<std::pair<const char*, uint64_t>> pieces{{reinterpret_cast<const char*>(&n), 8}, {json.data(), n}};
  for (auto& [name, t] : tensors)
    pieces.emplace_back(t.data<char>(), static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype()));
  io::atomic_write(path, pieces, "tapegrad::nn::save_safetensors");
}

namespace detail {

std::string excerpt(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  return text.substr(0, max) + "... (" + std::to_string(text.size()) + " bytes)";
}

namespace {
// A first pass over untrusted JSON that builds nothing: it bounds the nesting depth and finds keys
// repeated within one object. (nlohmann's parser callback could do this while building the DOM, but
// with a callback every closing brace rescans its parent's elements: quadratic on a wide header.)
struct Screen : nlohmann::json_sax<nlohmann::json> {
  int max_depth;
  std::vector<std::set<std::string>> keys;  // the keys seen so far in each open object
  int depth = 0;
  explicit Screen(int max) : max_depth(max) {}
  bool open() {
    if (++depth > max_depth)
      throw std::invalid_argument("arrays and objects nest deeper than " + std::to_string(max_depth) + " levels");
    return true;
  }
  bool start_object(std::size_t) override {
    keys.emplace_back();
    return open();
  }
  bool end_object() override {
    keys.pop_back();
    --depth;
    return true;
  }
  bool start_array(std::size_t) override { return open(); }
  bool end_array() override {
    --depth;
    return true;
  }
  bool key(string_t& k) override {
    if (!keys.back().insert(k).second)
      throw std::invalid_argument("key \"" + excerpt(k) + "\" appears twice in one object");
    return true;
  }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    throw std::invalid_argument(std::string("not valid JSON (") + excerpt(e.what(), 160) + ")");
  }
};
}  // namespace

nlohmann::json parse_untrusted_json(const std::string& text, int max_depth) {
  Screen screen(max_depth);
  nlohmann::json::sax_parse(text, &screen);
  try {
    return nlohmann::json::parse(text);  // iterative: safe at any depth the screen let through
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("not valid JSON (") + excerpt(e.what(), 160) + ")");
  }
}

}  // namespace detail

NamedTensors load_safetensors(const std::string& path, Metadata* metadata, uint64_t max_header_bytes) {
  io::remove_stale_temporaries(path);
  io::ReadFile in(path);
  if (!in.ok()) throw std::runtime_error("tapegrad::nn::load_safetensors: " + in.error());
  const uint64_t file_size = in.size();
  if (file_size < 8) throw bad_file(path, "it has " + std::to_string(file_size) + " bytes, fewer than the 8-byte header length");
  uint64_t n = 0;
  if (!in.read_at(0, &n, 8)) throw bad_file(path, in.error());
  // Both checks come before the header is allocated.
  if (n > max_header_bytes)
    throw bad_file(path, "header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(max_header_bytes) +
                             " bytes (max_header_bytes)");
  if (n > file_size - 8)
    throw bad_file(path, "header length " + std::to_string(n) + " exceeds the file size " + std::to_string(file_size) +
                             " (truncated or corrupt)");
  std::string json(n, '\0');
  if (!in.read_at(8, json.data(), n)) throw bad_file(path, in.error());
  nlohmann::json header;
  try {
    header = detail::parse_untrusted_json(json);
  } catch (const std::invalid_argument& e) {
    throw bad_file(path, std::string("the header is ") + e.what());
  }
  if (!header.is_object()) throw bad_file(path, "the header is not a JSON object");
  const uint64_t data_size = file_size - 8 - n;

  struct Entry { std::string name; DType dtype; Shape shape; uint64_t begin, end; };
  std::vector<Entry> entries;
  if (metadata) metadata->clear();
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      // The format says string to string; other values are an error only when the caller asks.
      if (!metadata) continue;
      if (!v.is_object()) throw bad_file(path, "__metadata__ is not a JSON object");
      for (auto& [key, value] : v.items()) {
        if (!value.is_string())
          throw bad_file(path, "__metadata__ value of '" + detail::excerpt(key) + "' is not a string");
        (*metadata)[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + detail::excerpt(name) + "': ";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw bad_file(path, where + "needs dtype, shape and data_offsets");
    auto& dt = v["dtype"];
    DType dtype;
    if (dt == "F32") dtype = DType::f32;
    else if (dt == "F64") dtype = DType::f64;
    else if (dt == "I64") dtype = DType::i64;
    else if (dt == "BOOL") dtype = DType::b8;
    else throw bad_file(path, where + "unsupported dtype " + quoted(dt) + " (F32, F64, I64 and BOOL are supported)");
    auto& sh = v["shape"];
    auto& off = v["data_offsets"];
    if (!sh.is_array() || !off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad_file(path, where + "shape must be an array and data_offsets two unsigned integers");
    if (sh.size() > kMaxRank) throw bad_file(path, where + "shape has " + std::to_string(sh.size()) + " dimensions (at most 64)");
    // Overflow-safe: the product of the non-zero dimensions stays below 2^62, so strides fit in
    // int64 even beside a zero dimension.
    std::vector<int64_t> dims;
    uint64_t nonzero = 1;
    bool empty = false;
    for (auto& d : sh) {
      if (!d.is_number_unsigned()) throw bad_file(path, where + "shape " + quoted(sh) + " has a non-natural dimension");
      const uint64_t k = d.get<uint64_t>();
      if (k == 0) empty = true;
      else if (nonzero > (uint64_t(1) << 62) / k) throw bad_file(path, where + "shape " + quoted(sh) + " is too large");
      else nonzero *= k;
      dims.push_back(static_cast<int64_t>(k));
    }
    const uint64_t numel = empty ? 0 : nonzero;
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      throw bad_file(path, where + "data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                               "] fall outside the data section of " + std::to_string(data_size) + " bytes (truncated?)");
    // A byte count that wraps around 2^64 must not compare equal to a small span.
    const bool wraps = numel > std::numeric_limits<uint64_t>::max() / dtype_size(dtype);
    if (wraps || e - b != numel * dtype_size(dtype))
      throw bad_file(path, where + "data_offsets span " + std::to_string(e - b) + " bytes but shape " + quoted(sh) + " of " +
                               dt.get<std::string>() + " needs " +
                               (wraps ? std::string("2^64 bytes or more") : std::to_string(numel * dtype_size(dtype))));
    entries.push_back({name, dtype, Shape(dims), b, e});
  }
  // By (begin, end): a 0-size tensor shares its offset with the next one (save_safetensors writes
  // it so), and comes first. Empty ranges hold no byte and overlap nothing.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  const Entry* last = nullptr;  // the last non-empty range so far
  for (auto& e : entries) {
    if (e.begin == e.end) continue;
    if (last && e.begin < last->end)
      throw bad_file(path,
                     "tensors '" + detail::excerpt(last->name) + "' and '" + detail::excerpt(e.name) + "' overlap");
    last = &e;
  }
  NamedTensors out;
  for (auto& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (!in.read_at(8 + n + e.begin, t.mutable_data<char>(), e.end - e.begin))
      throw bad_file(path, "cannot read the data of tensor '" + detail::excerpt(e.name) + "': " + in.error());
    if (e.dtype == DType::b8) {  // any byte but 0 or 1 would be an invalid C++ bool
      const char* p = t.data<char>();
      if (std::any_of(p, p + t.numel(), [](char c) { return c != 0 && c != 1; }))
        throw bad_file(path, "tensor '" + detail::excerpt(e.name) + "' is BOOL but holds a byte other than 0 or 1");
    }
    out.emplace_back(e.name, t);
  }
  return out;
}

void save(const Module& m, const std::string& path) { save_safetensors(m.state_dict(), path); }

void load(Module& m, const std::string& path, bool strict) { m.load_state_dict(load_safetensors(path), strict); }

}  // namespace tapegrad::nn
