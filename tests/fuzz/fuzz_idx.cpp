// libFuzzer harness for the IDX reader (datasets/idx.cpp): raw and gzip-compressed files.
// Any input must either decode to an array whose byte count matches its dimensions, or throw
// DatasetError. Anything else (a crash, a sanitizer report, another exception type, a huge
// allocation caught by -malloc_limit_mb) is a finding.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "datasets/idx.hpp"
#include "tests/fuzz/scratch.hpp"

using namespace tapegrad::datasets;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = tapegrad::fuzz::write_scratch("idx", data, size);
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
