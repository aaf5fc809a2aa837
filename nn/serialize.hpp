#pragma once
/// \file serialize.hpp
/// Saving and loading weights in the safetensors format, readable by the PyTorch ecosystem
/// (safetensors.torch.load_file):
///
///     [8 bytes: header length n, little-endian u64][n bytes: JSON header][raw little-endian data]
///     header: {"name": {"dtype": "F32"|"F64"|"I64", "shape": [...], "data_offsets": [begin, end]}, ...,
///              "__metadata__": {...}}   (offsets relative to the start of the data section)
///
/// Writing is atomic: the file is written to a temporary next to `path`, flushed to disk (fsync),
/// then renamed over it, so a save that fails at any point leaves any old file intact. Reading validates everything before touching memory
/// (sizes, offsets, overlap, dtypes, JSON) and throws std::runtime_error saying what is wrong.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.hpp"

namespace tapegrad::nn {

/// The header's "__metadata__": free-form string pairs ("format": "pt" is always written).
using Metadata = std::map<std::string, std::string>;

/// Writes named tensors (names unique) and `metadata` to `path`, atomically.
void save_safetensors(const NamedTensors& tensors, const std::string& path, const Metadata& metadata = {});
/// Reads every tensor of a safetensors file, in file (data offset) order; with `metadata`, also
/// the header's "__metadata__" (which must then map strings to strings).
NamedTensors load_safetensors(const std::string& path, Metadata* metadata = nullptr);

/// Writes `pieces` (pointer, size) one after the other to `path` atomically: into a temporary file
/// in the same directory, fsync'ed, renamed over `path`, then the directory fsync'ed. On any failure
/// the temporary is removed, `path` is left as it was, and std::runtime_error says "<who>: ...".
void atomic_write(const std::string& path, const std::vector<std::pair<const char*, uint64_t>>& pieces,
                  const char* who);

namespace testing {
/// Fault injection for tests: every atomic_write fails with ENOSPC (as on a full disk) once it has
/// written `bytes` bytes of its temporary file; -1 (the default) turns this off.
void fail_writes_after(int64_t bytes);
}  // namespace testing

/// Saves m.state_dict() (parameters and buffers).
void save(const Module& m, const std::string& path);
/// Loads a file saved by save() into m (m.load_state_dict: every mismatch reported at once).
void load(Module& m, const std::string& path, bool strict = true);

}  // namespace tapegrad::nn
