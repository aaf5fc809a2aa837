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
/// then renamed over it, so a save that fails at any point leaves any old file intact; temporaries
/// that a killed process left behind are removed by the next save or load of the same path
/// (io::remove_stale_temporaries). Reading validates everything before touching memory (sizes,
/// offsets, overlap, dtypes, JSON) and throws std::runtime_error naming the file and what is wrong.
/// Hostile headers are bounded: at most max_header_bytes (16 MiB by default; the reference
/// implementation allows 100 MB), nesting at most 64 deep, no key twice in one object (a repeated
/// tensor name is an error, not "last one wins"); only regular files are opened (a FIFO is refused,
/// never waited on).
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "autograd/file_io.hpp"
#include "nn/module.hpp"

namespace tapegrad::nn {

/// The header's "__metadata__": free-form string pairs ("format": "pt" is always written).
using Metadata = std::map<std::string, std::string>;

/// Writes named tensors (names unique) and `metadata` to `path`, atomically.
void save_safetensors(const NamedTensors& tensors, const std::string& path, const Metadata& metadata = {});
/// The default limit on the JSON header of a safetensors file read by load_safetensors (16 MiB:
/// about 100,000 tensors); checked before the header is allocated.
inline constexpr uint64_t kMaxHeaderBytes = uint64_t{16} << 20;

/// Reads every tensor of a safetensors file, in file (data offset) order (a 0-size tensor before a
/// non-empty one at the same offset, as save_safetensors writes them); with `metadata`, also
/// the header's "__metadata__" (which must then map strings to strings). A header longer than
/// `max_header_bytes` is refused before it is read.
NamedTensors load_safetensors(const std::string& path, Metadata* metadata = nullptr,
                              uint64_t max_header_bytes = kMaxHeaderBytes);

/// Atomic writing (the implementation lives in autograd/file_io.hpp, shared with the dataset readers and writers).
using io::atomic_write;
namespace testing {
using io::testing::fail_writes_after;
}  // namespace testing

namespace detail {
/// Parses JSON that came from a file: arrays and objects nested deeper than `max_depth`, and a key
/// that appears twice in one object, are errors (nlohmann::json would keep the last one silently).
/// Throws std::invalid_argument saying what is wrong, quoting at most a short excerpt of the input.
nlohmann::json parse_untrusted_json(const std::string& text, int max_depth = 64);
/// `text` cut to `max` characters, followed by "... (<n> bytes)" when cut: how untrusted input is
/// quoted in messages.
std::string excerpt(const std::string& text, size_t max = 80);
}  // namespace detail

/// Saves m.state_dict() (parameters and buffers).
void save(const Module& m, const std::string& path);
/// Loads a file saved by save() into m (m.load_state_dict: every mismatch reported at once).
void load(Module& m, const std::string& path, bool strict = true);

}  // namespace tapegrad::nn
