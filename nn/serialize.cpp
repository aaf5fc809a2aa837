// safetensors reader and writer. The reader never trusts the file: the header length, every
// offset and every size is checked against the file size (with overflow-safe arithmetic) before
// any byte is copied.
#include "nn/serialize.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <bit>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>

namespace tapegrad::nn {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

constexpr uint64_t kMaxHeader = 100u << 20;  // the reference implementation's limit (100 MB)
constexpr size_t kMaxRank = 64;

const char* st_dtype(DType d) { return d == DType::f32 ? "F32" : d == DType::f64 ? "F64" : "I64"; }

std::runtime_error bad_file(const std::string& path, const std::string& what) {
  return std::runtime_error("tapegrad::nn::load_safetensors: '" + path + "' is not a valid safetensors file: " + what);
}


std::atomic<int64_t> g_fail_writes_after{-1};  // testing::fail_writes_after

// write(2) of every byte, retrying short writes and EINTR; false with errno set on failure. The
// test hook makes the write fail with ENOSPC once `budget` bytes are written, as a full disk would.
bool write_all(int fd, const char* p, uint64_t size, int64_t& budget) {
  while (size > 0) {
    uint64_t chunk = std::min<uint64_t>(size, uint64_t{1} << 30);
    if (budget >= 0) {
      if (budget == 0) {
        errno = ENOSPC;
        return false;
      }
      chunk = std::min<uint64_t>(chunk, static_cast<uint64_t>(budget));
    }
    const ssize_t w = ::write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    size -= static_cast<uint64_t>(w);
    if (budget >= 0) budget -= w;
  }
  return true;
}

}  // namespace

void atomic_write(const std::string& path, const std::vector<std::pair<const char*, uint64_t>>& pieces,
                  const char* who) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  auto fail = [&](const std::string& what, int err) {
    std::remove(tmp.c_str());
    throw std::runtime_error(std::string(who) + ": " + what + " (" + std::strerror(err) + "); '" + path +
                             "' is unchanged");
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create the temporary file '" + tmp + "'", errno);
  int64_t budget = g_fail_writes_after.load();
  for (auto& [data, size] : pieces) {
    if (!write_all(fd, data, size, budget)) {
      const int err = errno;
      ::close(fd);
      fail("writing '" + tmp + "' failed", err);
    }
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail("flushing '" + tmp + "' to disk failed", err);
  }
  if (::close(fd) != 0) fail("closing '" + tmp + "' failed", errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename '" + tmp + "' to '" + path + "'", errno);
  // Make the rename itself durable: fsync the directory (best effort; some file systems refuse).
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

namespace testing {
void fail_writes_after(int64_t bytes) { g_fail_writes_after.store(bytes); }
}  // namespace testing

void save_safetensors(const NamedTensors& tensors, const std::string& path, const Metadata& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  for (auto& [key, value] : metadata) header["__metadata__"][key] = value;
  uint64_t offset = 0;
  std::set<std::string> names;
  for (auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__" || !names.insert(name).second)
      throw std::invalid_argument("tapegrad::nn::save_safetensors: tensor name '" + name + "' is empty, reserved or repeated");
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
  atomic_write(path, pieces, "tapegrad::nn::save_safetensors");
}

NamedTensors load_safetensors(const std::string& path, Metadata* metadata) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("tapegrad::nn::load_safetensors: cannot open '" + path + "'");
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (file_size < 8) throw bad_file(path, "it has " + std::to_string(file_size) + " bytes, fewer than the 8-byte header length");
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  if (n > kMaxHeader || n > file_size - 8)
    throw bad_file(path, "header length " + std::to_string(n) + " exceeds the file size " + std::to_string(file_size) +
                             " (truncated or corrupt)");
  std::string json(n, '\0');
  in.read(json.data(), static_cast<std::streamsize>(n));
  if (!in) throw bad_file(path, "cannot read the header");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    throw bad_file(path, std::string("the header is not valid JSON (") + e.what() + ")");
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
        if (!value.is_string()) throw bad_file(path, "__metadata__ value of '" + key + "' is not a string");
        (*metadata)[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw bad_file(path, where + "needs dtype, shape and data_offsets");
    auto& dt = v["dtype"];
    DType dtype;
    if (dt == "F32") dtype = DType::f32;
    else if (dt == "F64") dtype = DType::f64;
    else if (dt == "I64") dtype = DType::i64;
    else throw bad_file(path, where + "unsupported dtype " + dt.dump() + " (F32, F64 and I64 are supported)");
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
      if (!d.is_number_unsigned()) throw bad_file(path, where + "shape " + sh.dump() + " has a non-natural dimension");
      const uint64_t k = d.get<uint64_t>();
      if (k == 0) empty = true;
      else if (nonzero > (uint64_t(1) << 62) / k) throw bad_file(path, where + "shape " + sh.dump() + " is too large");
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
      throw bad_file(path, where + "data_offsets span " + std::to_string(e - b) + " bytes but shape " + sh.dump() + " of " +
                               dt.get<std::string>() + " needs " +
                               (wraps ? std::string("2^64 bytes or more") : std::to_string(numel * dtype_size(dtype))));
    entries.push_back({name, dtype, Shape(dims), b, e});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].begin < entries[i - 1].end)
      throw bad_file(path, "tensors '" + entries[i - 1].name + "' and '" + entries[i].name + "' overlap");
  NamedTensors out;
  for (auto& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    in.seekg(static_cast<std::streamoff>(8 + n + e.begin));
    in.read(t.mutable_data<char>(), static_cast<std::streamsize>(e.end - e.begin));
    if (!in) throw bad_file(path, "cannot read the data of tensor '" + e.name + "'");
    out.emplace_back(e.name, t);
  }
  return out;
}

void save(const Module& m, const std::string& path) { save_safetensors(m.state_dict(), path); }

void load(Module& m, const std::string& path, bool strict) { m.load_state_dict(load_safetensors(path), strict); }

}  // namespace tapegrad::nn
