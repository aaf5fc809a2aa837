// .npz: the zip container (PKWARE APPNOTE 6.3: local headers, central directory, end records,
// zip64 extensions) around .npy members, read and written.
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "datasets/deflate.hpp"
#include "autograd/file_io.hpp"
#include "datasets/npy.hpp"
#include "datasets/npy_detail.hpp"

namespace tapegrad::datasets {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr uint64_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22, kEnd64Size = 56, kLocator64Size = 20;

uint64_t get(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes; i-- > 0;) v = v << 8 | p[i];
  return v;
}
void put(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// One member as the central directory describes it.
struct Entry {
  std::string name;
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0;
  uint64_t compressed = 0, size = 0, offset = 0;
};

class ZipReader {
 public:
  explicit ZipReader(const std::string& path) : file_(path), path_(path) {
    if (!file_.ok()) throw DatasetError("tapegrad::datasets::read_npz: " + file_.error());
  }

  [[noreturn]] void fail(const std::string& what) const { throw DatasetError("NPZ file '" + path_ + "': " + what); }
  [[noreturn]] void fail(const Entry& e, const std::string& what) const {
    throw DatasetError("NPZ file '" + path_ + "', member '" + e.name + "': " + what);
  }

  std::vector<uint8_t> read(uint64_t offset, uint64_t n, const char* what) {
    if (offset > file_.size() || n > file_.size() - offset)
      fail(std::string(what) + " at offset " + std::to_string(offset) + " (" + std::to_string(n) +
           " bytes) lies beyond the end of the file (" + std::to_string(file_.size()) + " bytes)");
    std::vector<uint8_t> out(static_cast<size_t>(n));
    if (n && !file_.read_at(offset, out.data(), n)) fail(file_.error());
    return out;
  }

  // The central directory: found from the end record (and its zip64 form), every entry checked.
  std::vector<Entry> directory() {
    const uint64_t size = file_.size();
    if (size < kEndSize) fail("too short for a zip file (" + std::to_string(size) + " bytes); not an .npz file");
    // The end record is the last 22 bytes plus a comment of up to 65535 bytes: the last signature
    // whose comment length reaches exactly the end of the file.
    const uint64_t tail_size = std::min<uint64_t>(size, kEndSize + 65535);
    const std::vector<uint8_t> tail = read(size - tail_size, tail_size, "the end of the zip");
    uint64_t end = UINT64_MAX;
    for (uint64_t i = tail_size - kEndSize + 1; i-- > 0;) {
      if (get(&tail[i], 4) == kEndSig && i + kEndSize + get(&tail[i + 20], 2) == tail_size) {
        end = size - tail_size + i;
        break;
      }
    }
    if (end == UINT64_MAX) fail("no zip end-of-central-directory record; not an .npz file (or truncated)");
    const uint8_t* e = &tail[end - (size - tail_size)];
    if (get(e + 4, 2) != 0 || get(e + 6, 2) != 0) fail("multi-disk zip archives are not supported");
    uint64_t count = get(e + 10, 2), cd_size = get(e + 12, 4), cd_offset = get(e + 16, 4);
    if (get(e + 8, 2) != count) fail("the end record's entry counts disagree");
    uint64_t cd_end = end;  // the directory ends where the (zip64) end records begin
    if (end >= kLocator64Size) {
      const std::vector<uint8_t> loc = read(end - kLocator64Size, kLocator64Size, "the zip64 locator");
      if (get(loc.data(), 4) == kLocator64Sig) {
        const uint64_t at = get(&loc[8], 8);
        if (get(&loc[4], 4) != 0 || get(&loc[16], 4) > 1) fail("multi-disk zip archives are not supported");
        if (at > end - kLocator64Size || end - kLocator64Size - at < kEnd64Size)
          fail("the zip64 locator points outside the file (offset " + std::to_string(at) + ")");
        const std::vector<uint8_t> r = read(at, kEnd64Size, "the zip64 end record");
        if (get(r.data(), 4) != kEnd64Sig) fail("no zip64 end record where the locator points");
        if (get(&r[16], 4) != 0 || get(&r[20], 4) != 0) fail("multi-disk zip archives are not supported");
        count = get(&r[32], 8);
        if (get(&r[24], 8) != count) fail("the zip64 end record's entry counts disagree");
        cd_size = get(&r[40], 8);
        cd_offset = get(&r[48], 8);
        cd_end = at;
      }
    }
    if (cd_offset > cd_end || cd_size != cd_end - cd_offset)
      fail("the central directory (offset " + std::to_string(cd_offset) + ", " + std::to_string(cd_size) +
           " bytes) does not end where the end records begin (offset " + std::to_string(cd_end) + ")");
    if (count > cd_size / kCentralSize)
      fail(std::to_string(count) + " entries cannot fit a central directory of " + std::to_string(cd_size) + " bytes");
    const std::vector<uint8_t> cd = read(cd_offset, cd_size, "the central directory");
    std::vector<Entry> entries;
    uint64_t pos = 0;
    for (uint64_t i = 0; i < count; ++i) entries.push_back(central_entry(cd, pos, cd_offset));
    if (pos != cd_size)
      fail("the central directory holds " + std::to_string(cd_size - pos) + " bytes after its entries");
    check_ranges(entries, cd_offset);
    return entries;
  }

  // The member's bytes, decompressed and checked against its size and CRC-32.
  std::vector<uint8_t> contents(const Entry& e) {
    const std::vector<uint8_t> local = read(e.offset, kLocalSize, "a local header");
    if (get(local.data(), 4) != kLocalSig) fail(e, "no local header at offset " + std::to_string(e.offset));
    const uint64_t name_len = get(&local[26], 2), extra_len = get(&local[28], 2);
    const std::vector<uint8_t> name = read(e.offset + kLocalSize, name_len, "a local header's name");
    if (std::string(name.begin(), name.end()) != e.name) fail(e, "the local header names another member");
    if (get(&local[8], 2) != e.method) fail(e, "the local header and the directory disagree on the compression");
    const uint64_t data_at = e.offset + kLocalSize + name_len + extra_len;
    const auto next = std::upper_bound(starts_.begin(), starts_.end(), e.offset);
    const uint64_t limit = next == starts_.end() ? data_end_ : *next;
    if (data_at > limit || e.compressed > limit - data_at)
      fail(e, "its data (" + std::to_string(e.compressed) + " bytes at offset " + std::to_string(data_at) +
                  ") runs into the next member or the directory");
    std::vector<uint8_t> raw = read(data_at, e.compressed, "member data");
    std::vector<uint8_t> out = e.method == 0 ? std::move(raw) : inflate_member(e, raw);
    if (out.size() != e.size)
      fail(e, "holds " + std::to_string(out.size()) + " bytes, the directory says " + std::to_string(e.size));
    const uLong crc = crc32_z(crc32_z(0, nullptr, 0), out.data(), out.size());
    if (crc != e.crc) fail(e, "CRC-32 mismatch (corrupt data)");
    return out;
  }

 private:
  Entry central_entry(const std::vector<uint8_t>& cd, uint64_t& pos, uint64_t cd_offset) {
    if (cd.size() - pos < kCentralSize) fail("the central directory is truncated");
    const uint8_t* p = &cd[pos];
    if (get(p, 4) != kCentralSig)
      fail("bad central directory entry signature at offset " + std::to_string(cd_offset + pos));
    Entry e;
    e.flags = static_cast<uint16_t>(get(p + 8, 2));
    e.method = static_cast<uint16_t>(get(p + 10, 2));
    e.crc = static_cast<uint32_t>(get(p + 16, 4));
    e.compressed = get(p + 20, 4);
    e.size = get(p + 24, 4);
    const uint64_t name_len = get(p + 28, 2), extra_len = get(p + 30, 2), comment_len = get(p + 32, 2);
    const uint64_t disk = get(p + 34, 2);
    e.offset = get(p + 42, 4);
    if (cd.size() - pos - kCentralSize < name_len + extra_len + comment_len) fail("the central directory is truncated");
    e.name.assign(reinterpret_cast<const char*>(p + kCentralSize), name_len);
    // zip64 extra field (id 1): the 8-byte values of the fields set to 0xFFFFFFFF, in this order.
    const uint8_t* x = p + kCentralSize + name_len;
    for (uint64_t at = 0; at + 4 <= extra_len;) {
      const uint64_t id = get(x + at, 2), len = get(x + at + 2, 2);
      if (at + 4 + len > extra_len) fail(e, "a malformed extra field in the central directory");
      if (id == 1) {
        uint64_t k = at + 4;
        for (uint64_t* field : {&e.size, &e.compressed, &e.offset}) {
          if (*field != 0xFFFFFFFF) continue;
          if (k + 8 > at + 4 + len) fail(e, "the zip64 extra field lacks a size or offset it must hold");
          *field = get(x + k, 8);
          k += 8;
        }
      }
      at += 4 + len;
    }
    if (disk != 0 && disk != 0xFFFF) fail(e, "multi-disk zip archives are not supported");
    if (e.flags & 1) fail(e, "encrypted members are not supported");
    if (e.method != 0 && e.method != 8)
      fail(e, "compression method " + std::to_string(e.method) +
                  " is not supported (NumPy writes stored (0) or deflate (8) members)");
    if (e.method == 0 && e.compressed != e.size)
      fail(e, "a stored member's sizes disagree (" + std::to_string(e.compressed) + " and " + std::to_string(e.size) +
                  ")");
    pos += kCentralSize + name_len + extra_len + comment_len;
    return e;
  }

  // Members lie before the directory and do not overlap (overlapping members are how zip bombs
  // multiply their output): each one's data must end before the next local header.
  void check_ranges(const std::vector<Entry>& entries, uint64_t cd_offset) {
    std::vector<uint64_t> starts;
    for (const Entry& e : entries) {
      if (e.offset >= cd_offset)
        fail(e, "its local header offset " + std::to_string(e.offset) + " is not before the directory");
      starts.push_back(e.offset);
    }
    std::sort(starts.begin(), starts.end());
    if (std::adjacent_find(starts.begin(), starts.end()) != starts.end()) fail("two members share one local header");
    data_end_ = cd_offset;
    starts_ = std::move(starts);
  }

  std::vector<uint8_t> inflate_member(const Entry& e, const std::vector<uint8_t>& raw) {
    z_stream z{};
    if (inflateInit2(&z, -15) != Z_OK) fail(e, "cannot start zlib decompression");
    std::vector<uint8_t> out;
    z.next_in = const_cast<uint8_t*>(raw.data());
    int r = Z_OK;
    uint64_t fed = 0;
    // The output grows with the bytes really decompressed (at most doubling, 64 KiB at first), up
    // to one byte past the announced size: a lying size costs at most twice the real data.
    while (r != Z_STREAM_END) {
      if (z.avail_in == 0) {
        const uint64_t left = raw.size() - fed;
        if (left == 0) break;
        z.avail_in = static_cast<uInt>(std::min<uint64_t>(left, 1u << 30));
        fed += z.avail_in;
      }
      const uint64_t have = out.size();
      if (have > e.size) break;
      const uint64_t want = std::min<uint64_t>({std::max<uint64_t>(have, 1u << 16), e.size + 1 - have, 1u << 30});
      out.resize(have + want);
      z.next_out = out.data() + have;
      z.avail_out = static_cast<uInt>(want);
      r = inflate(&z, Z_NO_FLUSH);
      out.resize(have + want - z.avail_out);
      if (r != Z_OK && r != Z_STREAM_END && !(r == Z_BUF_ERROR && z.avail_in == 0)) {
        const std::string msg = z.msg ? z.msg : "zlib error " + std::to_string(r);
        inflateEnd(&z);
        fail(e, "corrupt deflate data (" + msg + ")");
      }
    }
    inflateEnd(&z);
    if (out.size() > e.size)
      fail(e, "decompresses to more than the " + std::to_string(e.size) + " bytes the directory says");
    if (r != Z_STREAM_END) fail(e, "the deflate stream ends early (truncated member)");
    if (z.avail_in != 0 || fed != raw.size()) fail(e, "bytes follow the end of its deflate stream");
    return out;
  }

  io::ReadFile file_;
  std::string path_;
  uint64_t data_end_ = 0;
  std::vector<uint64_t> starts_;
};

std::string member_key(const std::string& name) {
  return name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0 ? name.substr(0, name.size() - 4) : "";
}

}  // namespace

NamedNpyArrays read_npz(const std::string& path) {
  ZipReader zip(path);
  const std::vector<Entry> entries = zip.directory();
  NamedNpyArrays out;
  std::set<std::string> seen;
  for (const Entry& e : entries) {
    const std::string key = member_key(e.name);
    if (key.empty()) zip.fail(e, "is not an .npy file (an .npz member is named '<array>.npy')");
    if (!seen.insert(key).second) zip.fail(e, "appears twice");
  }
  for (const Entry& e : entries) {
    std::vector<uint8_t> bytes = zip.contents(e);
    const std::string name = "NPZ file '" + path + "', member '" + e.name + "'";
    const npy_detail::Header h = npy_detail::parse_header(bytes.data(), bytes.size(), name);
    npy_detail::check_payload_size(h, bytes.size() - h.header_bytes, name);
    bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(h.header_bytes));  // no second copy
    out.emplace_back(member_key(e.name), npy_detail::finish(h, std::move(bytes), name));
  }
  return out;
}

NamedArrays load_npz(const std::string& path) {
  NamedArrays out;
  for (auto& [name, array] : read_npz(path)) out.emplace_back(name, npy_to_tensor(array));
  return out;
}

void write_npz(const std::string& path, const NamedNpyArrays& arrays, bool compressed) {
  const std::string who = "tapegrad::datasets::write_npz '" + path + "'";
  std::set<std::string> seen;
  for (const auto& [name, array] : arrays) {
    if (name.empty() || name.find('\0') != std::string::npos)
      throw DatasetError(who + ": an array name is empty or holds a NUL byte");
    if (!seen.insert(name).second) throw DatasetError(who + ": the name '" + name + "' appears twice");
    if (name.size() + 4 > 0xFFFF) throw DatasetError(who + ": the name '" + name.substr(0, 40) + "...' is too long");
  }
  // Every record in its zip64 form, as NumPy forces zip64 on each member; DOS time 1980-01-01 00:00.
  std::vector<std::vector<uint8_t>> pieces;
  std::vector<uint8_t> directory;
  uint64_t offset = 0;
  for (const auto& [name, array] : arrays) {
    const std::string member = name + ".npy";
    std::vector<uint8_t> data = npy_bytes(array);
    const uint64_t size = data.size();
    const auto crc = static_cast<uint32_t>(crc32_z(crc32_z(0, nullptr, 0), data.data(), data.size()));
    if (compressed) data = detail::deflate_bytes(data, -15, who + ": compressing '" + name + "'");
    const uint16_t method = compressed ? 8 : 0;
    // The fields local headers and directory entries share, from "version needed" (4.5: zip64) to
    // the extra field's length; both sizes are in the zip64 extra field that follows the name.
    auto common = [&](std::vector<uint8_t>& r, uint64_t extra_len) {
      for (uint64_t v : {45u, 0u, static_cast<unsigned>(method), 0u, 0x21u}) put(r, v, 2);
      put(r, crc, 4);
      put(r, 0xFFFFFFFF, 4);
      put(r, 0xFFFFFFFF, 4);
      put(r, member.size(), 2);
      put(r, extra_len, 2);
    };
    std::vector<uint8_t> local;
    put(local, kLocalSig, 4);
    common(local, 20);
    local.insert(local.end(), member.begin(), member.end());
    put(local, 1, 2);  // the zip64 extra field: id 1, 16 bytes
    put(local, 16, 2);
    put(local, size, 8);
    put(local, data.size(), 8);

    put(directory, kCentralSig, 4);
    put(directory, 45, 2);  // made by: 4.5, MS-DOS attributes
    common(directory, 28);
    put(directory, 0, 2);  // comment length
    put(directory, 0, 2);  // disk
    put(directory, 0, 2);  // internal attributes
    put(directory, 0, 4);  // external attributes
    put(directory, 0xFFFFFFFF, 4);
    directory.insert(directory.end(), member.begin(), member.end());
    put(directory, 1, 2);  // id 1, 24 bytes: both sizes and the offset
    put(directory, 24, 2);
    put(directory, size, 8);
    put(directory, data.size(), 8);
    put(directory, offset, 8);

    offset += local.size() + data.size();
    pieces.push_back(std::move(local));
    pieces.push_back(std::move(data));
  }
  std::vector<uint8_t> end;
  put(end, kEnd64Sig, 4);
  put(end, kEnd64Size - 12, 8);
  put(end, 45, 2);
  put(end, 45, 2);
  put(end, 0, 4);
  put(end, 0, 4);
  put(end, arrays.size(), 8);
  put(end, arrays.size(), 8);
  put(end, directory.size(), 8);
  put(end, offset, 8);
  put(end, kLocator64Sig, 4);
  put(end, 0, 4);
  put(end, offset + directory.size(), 8);
  put(end, 1, 4);
  put(end, kEndSig, 4);
  put(end, 0, 4);
  put(end, 0xFFFF, 2);
  put(end, 0xFFFF, 2);
  put(end, 0xFFFFFFFF, 4);
  put(end, 0xFFFFFFFF, 4);
  put(end, 0, 2);
  pieces.push_back(std::move(directory));
  pieces.push_back(std::move(end));
  std::vector<std::pair<const char*, uint64_t>> views;
  for (const auto& p : pieces) views.emplace_back(reinterpret_cast<const char*>(p.data()), p.size());
  try {
    io::atomic_write(path, views, "tapegrad::datasets::write_npz");
  } catch (const std::runtime_error& e) {
    throw DatasetError(e.what());
  }
}

void save_npz(const std::string& path, const NamedArrays& tensors, bool compressed) {
  NamedNpyArrays arrays;
  for (const auto& [name, t] : tensors) arrays.emplace_back(name, tensor_to_npy(t));
  write_npz(path, arrays, compressed);
}

}  // namespace tapegrad::datasets
