// libFuzzer harness for the safetensors loader (nn/serialize.cpp) and, on the files it accepts,
// the run state reader (train/run_state.cpp). Any input must either load
// tensors whose storage holds exactly numel · dtype_size bytes, or throw std::runtime_error.
// Anything else (a crash, a sanitizer report, another exception type, a huge allocation caught by
// -malloc_limit_mb) is a finding.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "nn/serialize.hpp"
#include "tests/fuzz/scratch.hpp"
#include "train/run_state.hpp"

using namespace tapegrad;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = tapegrad::fuzz::write_scratch("st", data, size);
  try {
    nn::Metadata metadata;
    nn::NamedTensors ts = nn::load_safetensors(path, &metadata);
    uint64_t total = 0;
    for (auto& [name, t] : ts) {
      const uint64_t bytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
      if (bytes > size) std::abort();  // more data than the file could hold
      total += bytes;
      // Touch the first and last byte: ASan reports any storage smaller than the shape says.
      if (bytes) {
        volatile char first = t.data<char>()[0], last = t.data<char>()[bytes - 1];
        (void)first;
        (void)last;
      }
    }
    if (total > size) std::abort();
  } catch (const std::runtime_error&) {
    return 0;  // rejected with a message: the expected outcome for a corrupt file
  }
  // A valid safetensors file: the run state reader parses its metadata (counts, history JSON).
  try {
    train::RunState c = train::load_run_state(path);
    if (static_cast<int64_t>(c.history.epochs.size()) != c.epoch) std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
