#pragma once
// The parsers read files: each harness writes its input to one scratch file per process.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace tapegrad::fuzz {

/// Writes data[0, size) to $TMPDIR/tapegrad_fuzz_<tag>.<pid> (or /tmp) and returns its path.
inline const std::string& write_scratch(const char* tag, const uint8_t* data, size_t size) {
  static const std::string path = [tag] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir ? dir : "/tmp") + "/tapegrad_fuzz_" + tag + "." + std::to_string(::getpid());
  }();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  if (std::fclose(f) != 0) std::abort();
  return path;
}

}  // namespace tapegrad::fuzz
