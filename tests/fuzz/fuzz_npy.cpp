// libFuzzer harness for the .npy reader (datasets/npy.cpp): the input is the file. read_npy (from the
// file), parse_npy (from memory) and load_npy (straight into a tensor in the common case) must agree:
// the array's byte count matches its shape, it converts to the tensor load_npy gives, and it writes
// back to bytes that parse to the same array; or read_npy and parse_npy both throw DatasetError.
// Anything else (a crash, a sanitizer report, another exception type, a huge allocation caught by
// -malloc_limit_mb) is a finding.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "datasets/npy.hpp"
#include "tests/fuzz/scratch.hpp"

using namespace tapegrad::datasets;

namespace {
// The error of f(), or "" when it returns normally (with the array in `out`).
template <class F>
std::string outcome(F f, NpyArray& out) {
  try {
    out = f();
  } catch (const DatasetError& e) {
    return e.what() + std::string(" ");  // never empty
  }
  return "";
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = tapegrad::fuzz::write_scratch("npy", data, size);
  NpyArray from_file, from_memory;
  const std::string e1 = outcome([&] { return read_npy(path); }, from_file);
  const std::string e2 = outcome([&] { return parse_npy(data, size, "input"); }, from_memory);
  if (e1.empty() != e2.empty()) std::abort();  // the two entry points disagree
  if (!e1.empty()) return 0;
  if (from_file.shape != from_memory.shape || from_file.bytes != from_memory.bytes) std::abort();
  if (from_file.bytes.size() != static_cast<size_t>(from_file.numel()) * npy_type_size(from_file.type)) std::abort();
  tapegrad::Tensor t = npy_to_tensor(from_file);
  if (t.numel() != from_file.numel()) std::abort();
  // load_npy reads the common case straight into the tensor: the same values, bit for bit
  const tapegrad::Tensor direct = load_npy(path);
  if (direct.dtype() != t.dtype() || direct.shape() != t.shape()) std::abort();
  if (tensor_to_npy(direct).bytes != tensor_to_npy(t).bytes) std::abort();
  const std::vector<uint8_t> again = npy_bytes(from_file);
  NpyArray back = parse_npy(again.data(), again.size(), "rewritten");
  if (back.type != from_file.type || back.shape != from_file.shape || back.bytes != from_file.bytes) std::abort();
  return 0;
}
