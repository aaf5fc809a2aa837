// Regression cases from fuzzing the file parsers (tests/fuzz): files whose header describes more
// than the file holds are rejected before anything that size is allocated.
#include <doctest/doctest.h>

#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "datasets/idx.hpp"
#include "nn/serialize.hpp"

using namespace tapegrad;

namespace {
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
// A safetensors file: 8-byte little-endian header length, the JSON header, then `data`.
std::string safetensors(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json + data;
}
}  // namespace

TEST_CASE("safetensors: a shape whose byte count wraps around 2^64 is rejected, not allocated") {
  const std::string path = "reliability_wrap.safetensors";
  // 2^61 float64 values are 2^64 bytes, which wraps to 0 and used to match data_offsets [0, 0].
  write_file(path, safetensors(R"({"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", ""));
  CHECK_THROWS_WITH_AS(nn::load_safetensors(path), doctest::Contains("needs 2^64 bytes or more"),
                       std::runtime_error);
  // 2^31 · 2^31 float32 values: 2^64 bytes as well.
  write_file(path, safetensors(R"({"w":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,0]}})", ""));
  CHECK_THROWS_WITH_AS(nn::load_safetensors(path), doctest::Contains("tensor 'w'"), std::runtime_error);
  // Huge dimensions beside a zero one would overflow the strides of an empty tensor.
  write_file(path, safetensors(R"({"w":{"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}})", ""));
  CHECK_THROWS_WITH_AS(nn::load_safetensors(path), doctest::Contains("is too large"), std::runtime_error);
  // ... while an honest empty tensor loads.
  write_file(path, safetensors(R"({"w":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]}})", ""));
  auto loaded = nn::load_safetensors(path);
  REQUIRE(loaded.size() == 1);
  CHECK(loaded[0].second.numel() == 0);
  std::remove(path.c_str());
}

TEST_CASE("safetensors: metadata is read back and must map strings to strings when asked for") {
  const std::string path = "reliability_meta.safetensors";
  nn::save_safetensors({}, path, {{"epoch", "3"}});
  nn::Metadata meta;
  CHECK(nn::load_safetensors(path, &meta).empty());
  CHECK(meta.at("epoch") == "3");
  CHECK(meta.at("format") == "pt");
  write_file(path, safetensors(R"({"__metadata__":{"epoch":3}})", ""));
  CHECK_NOTHROW(nn::load_safetensors(path));  // weights-only readers ignore the metadata
  CHECK_THROWS_WITH_AS(nn::load_safetensors(path, &meta), doctest::Contains("__metadata__ value of 'epoch' is not a string"),
                       std::runtime_error);
  std::remove(path.c_str());
}

TEST_CASE("IDX: a gzip file whose header claims 4 GiB fails after reading what the stream holds") {
  const std::string path = "reliability_lying.idx.gz";
  // header: ubyte, rank 2, dims 65536 x 65535 (just under 4 GiB), then 100 bytes of payload
  std::string raw = {0, 0, 0x08, 2, 0, 1, 0, 0, 0, 0, static_cast<char>(0xff), static_cast<char>(0xff)};
  raw += std::string(100, 'x');
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f);
  gzwrite(f, raw.data(), static_cast<unsigned>(raw.size()));
  gzclose(f);
  CHECK_THROWS_WITH_AS(datasets::read_idx(path), doctest::Contains("only 100 present"), datasets::DatasetError);
  std::remove(path.c_str());
}
