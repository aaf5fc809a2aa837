// libFuzzer harness for the .npz reader (datasets/npy_zip.cpp). An input that starts like a zip
// ("PK") is the file as is; any other input is wrapped by the harness into a valid zip holding it
// twice, as a stored member "a.npy" and a deflated member "b.npy" (right sizes and CRC-32), so that
// mutations of the .npy bytes get past the container checks. Any input must either decode to arrays
// whose byte counts match their shapes, or throw DatasetError.
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "datasets/npy.hpp"
#include "tests/fuzz/scratch.hpp"

using namespace tapegrad::datasets;

namespace {
void put(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

std::vector<uint8_t> deflated(const uint8_t* data, size_t size) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::vector<uint8_t> out(deflateBound(&z, static_cast<uLong>(size)));
  z.next_in = const_cast<uint8_t*>(data);
  z.avail_in = static_cast<uInt>(size);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  return out;
}

// A plain (not zip64) zip of the members (name, method, data as stored, uncompressed size, crc).
std::vector<uint8_t> wrap(const uint8_t* data, size_t size) {
  const auto crc = static_cast<uint32_t>(crc32(0, data, static_cast<uInt>(size)));
  struct Member {
    const char* name;
    int method;
    std::vector<uint8_t> bytes;
  };
  const Member members[] = {{"a.npy", 0, std::vector<uint8_t>(data, data + size)}, {"b.npy", 8, deflated(data, size)}};
  std::vector<uint8_t> out, dir;
  for (const Member& m : members) {
    const uint64_t offset = out.size();
    for (std::vector<uint8_t>* rec : {&out, &dir}) {
      const bool central = rec == &dir;
      put(*rec, central ? 0x02014b50 : 0x04034b50, 4);
      if (central) put(*rec, 20, 2);
      put(*rec, 20, 2);
      put(*rec, 0, 2);
      put(*rec, m.method, 2);
      put(*rec, 0, 4);
      put(*rec, crc, 4);
      put(*rec, m.bytes.size(), 4);
      put(*rec, size, 4);
      put(*rec, 5, 2);
      put(*rec, 0, 2);
      if (central) {
        put(*rec, 0, 2);  // comment length
        put(*rec, 0, 2);  // disk
        put(*rec, 0, 2);  // internal attributes
        put(*rec, 0, 4);  // external attributes
        put(*rec, offset, 4);
      }
      rec->insert(rec->end(), m.name, m.name + 5);
    }
    out.insert(out.end(), m.bytes.begin(), m.bytes.end());
  }
  const uint64_t cd_offset = out.size();
  out.insert(out.end(), dir.begin(), dir.end());
  put(out, 0x06054b50, 4);
  put(out, 0, 4);
  put(out, 2, 2);
  put(out, 2, 2);
  put(out, dir.size(), 4);
  put(out, cd_offset, 4);
  put(out, 0, 2);
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool zip = size >= 2 && data[0] == 'P' && data[1] == 'K';
  const std::vector<uint8_t> file = zip ? std::vector<uint8_t>(data, data + size) : wrap(data, size);
  const std::string& path = tapegrad::fuzz::write_scratch("npz", file.data(), file.size());
  try {
    const NamedNpyArrays arrays = read_npz(path);
    if (!zip && arrays.size() != 2) std::abort();
    for (const auto& [name, a] : arrays) {
      if (a.bytes.size() != static_cast<size_t>(a.numel()) * npy_type_size(a.type)) std::abort();
      if (npy_to_tensor(a).numel() != a.numel()) std::abort();
    }
  } catch (const DatasetError&) {
    // rejected with a message: the expected outcome for a corrupt file
  }
  return 0;
}
