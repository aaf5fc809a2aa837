#include "datasets/deflate.hpp"

#include <zlib.h>

#include <algorithm>

#include "datasets/idx.hpp"  // DatasetError

namespace tapegrad::datasets::detail {

std::vector<uint8_t> deflate_bytes(const std::vector<uint8_t>& raw, int window_bits, const std::string& what) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw DatasetError(what + ": cannot start zlib compression");
  std::vector<uint8_t> out;
  size_t fed = 0;
  for (int r = Z_OK; r != Z_STREAM_END;) {
    if (z.avail_in == 0 && fed < raw.size()) {
      z.next_in = const_cast<uint8_t*>(raw.data() + fed);
      z.avail_in = static_cast<uInt>(std::min<size_t>(raw.size() - fed, size_t{1} << 30));
      fed += z.avail_in;
    }
    const size_t old = out.size();
    out.resize(old + (size_t{1} << 20));
    z.next_out = out.data() + old;
    z.avail_out = 1u << 20;
    r = deflate(&z, fed == raw.size() && z.avail_in == 0 ? Z_FINISH : Z_NO_FLUSH);
    out.resize(out.size() - z.avail_out);
    if (r == Z_STREAM_ERROR) {
      deflateEnd(&z);
      throw DatasetError(what + ": compression failed");
    }
  }
  deflateEnd(&z);
  return out;
}

}  // namespace tapegrad::datasets::detail
