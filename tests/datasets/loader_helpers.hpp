#pragma once
// Test helpers shared by the .npy / .npz and CSV tests: files as bytes, and the message of a
// DatasetError.
#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "datasets/idx.hpp"

namespace tapegrad::testing {

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
/// The message of the DatasetError that f() throws; "" when it returns.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const datasets::DatasetError& e) {
    return e.what();
  }
  return "";
}
/// Writes `bytes` to `path`, reads it with `read(path)`, and checks that the error names the file
/// and contains `expected`.
template <class Read>
void check_file_error(const std::string& path, const std::vector<uint8_t>& bytes, const std::string& expected,
                      Read read) {
  CAPTURE(path);
  write_bytes(path, bytes);
  const std::string msg = error_of([&] { read(path); });
  CHECK(msg.find(path) != std::string::npos);
  CHECK_MESSAGE(msg.find(expected) != std::string::npos, msg);
}

}  // namespace tapegrad::testing
