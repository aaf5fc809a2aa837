#pragma once
/// \file serialize.hpp
/// Saving and loading weights in the safetensors format, readable by the PyTorch ecosystem
/// (safetensors.torch.load_file):
///
///     [8 bytes: header length n, little-endian u64][n bytes: JSON header][raw little-endian data]
///     header: {"name": {"dtype": "F32"|"F64"|"I64", "shape": [...], "data_offsets": [begin, end]}, ...,
///              "__metadata__": {...}}   (offsets relative to the start of the data section)
///
/// Writing is atomic: the file is written to a temporary next to `path`, then renamed over it, so a
/// failed save leaves any old file intact. Reading validates everything before touching memory
/// (sizes, offsets, overlap, dtypes, JSON) and throws std::runtime_error saying what is wrong.
#include <string>

#include "nn/module.hpp"

namespace tapegrad::nn {

/// Writes named tensors (names unique) to `path`.
void save_safetensors(const NamedTensors& tensors, const std::string& path);
/// Reads every tensor of a safetensors file, in file (data offset) order.
NamedTensors load_safetensors(const std::string& path);

/// Saves m.state_dict() (parameters and buffers).
void save(const Module& m, const std::string& path);
/// Loads a file saved by save() into m (m.load_state_dict: every mismatch reported at once).
void load(Module& m, const std::string& path, bool strict = true);

}  // namespace tapegrad::nn
