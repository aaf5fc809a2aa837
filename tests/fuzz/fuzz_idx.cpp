// libFuzzer harness for the IDX reader (datasets/idx.cpp): raw and gzip-compressed files. The
// first byte picks the mode: even, the rest is the file as is; odd, the harness gzips the rest, so
// that mutations reach the decompressing reader with valid streams (random bytes rarely are).
// Any input must either decode to an array whose byte count matches its dimensions, or throw
// DatasetError. Anything else (a crash, a sanitizer report, another exception type, a huge
// allocation caught by -malloc_limit_mb) is a finding.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <zlib.h>

#include "datasets/idx.hpp"
#include "tests/fuzz/scratch.hpp"

using namespace tapegrad::datasets;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool gzip = data[0] & 1;
  const std::string& path = tapegrad::fuzz::write_scratch("idx", data + 1, size - 1);
  if (gzip) {
    gzFile g = gzopen(path.c_str(), "wb1");
    if (!g) std::abort();
    if (size > 1 && gzwrite(g, data + 1, static_cast<unsigned>(size - 1)) != static_cast<int>(size - 1)) std::abort();
    if (gzclose(g) != Z_OK) std::abort();
  }
  try {
    IdxArray a = read_idx(path);
    if (a.dims.empty() || a.dims.size() > 8) std::abort();
    if (a.bytes.size() != static_cast<size_t>(a.numel()) * idx_type_size(a.type)) std::abort();
    if (a.numel() > 0) (void)a.value(a.numel() - 1);
  } catch (const DatasetError&) {
    // rejected with a message: the expected outcome for a corrupt file
  }
  return 0;
}
