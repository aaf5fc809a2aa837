// IDX reader and MNIST directory loader on good and corrupt files made here.
#include <doctest/doctest.h>

#include <zlib.h>

#include <algorithm>
#include <fstream>

#include "datasets/datasets.hpp"
#include "datasets/fixture_mnist.hpp"

using namespace tapegrad;
using namespace tapegrad::datasets;
using tapegrad::testing::TempDir;

namespace {
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
// The error message read_idx throws for `path` (empty when it does not throw).
std::string idx_error(const std::string& path) {
  try {
    read_idx(path);
  } catch (const DatasetError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("read_idx decodes a hand-written big-endian file") {
  TempDir dir("idx");
  // ubyte [2, 3]
  write_bytes(dir.file("a"), {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255});
  IdxArray a = read_idx(dir.file("a"));
  CHECK(a.type == IdxType::u8);
  CHECK(a.dims == std::vector<int64_t>{2, 3});
  CHECK(a.value(5) == 255);
  Tensor t = idx_to_tensor(a, DType::f32, 1.0 / 255.0);
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.at({1, 2}) == doctest::Approx(1.0));
  CHECK(t.at({0, 1}) == doctest::Approx(2.0 / 255.0));
  // int32 [2] = {258, -1}: the bytes are big-endian
  write_bytes(dir.file("b"), {0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 2, 0xff, 0xff, 0xff, 0xff});
  IdxArray b = read_idx(dir.file("b"));
  CHECK(b.value(0) == 258);
  CHECK(b.value(1) == -1);
  CHECK(idx_to_tensor(b, DType::i64).to_vector() == std::vector<double>{258, -1});
}

TEST_CASE("read_idx byte-swaps every element of the multi-byte types, the last one included") {
  TempDir dir("idx_be");
  // int16 [2] = {1, 256}
  write_bytes(dir.file("i16"), {0, 0, 0x0B, 1, 0, 0, 0, 2, 0x00, 0x01, 0x01, 0x00});
  IdxArray a = read_idx(dir.file("i16"));
  CHECK(a.value(0) == 1);
  CHECK(a.value(1) == 256);
  // float32 [1] = {1.5} (0x3fc00000)
  write_bytes(dir.file("f32"), {0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3f, 0xc0, 0, 0});
  CHECK(read_idx(dir.file("f32")).value(0) == 1.5);
  // float64 [2] = {-2, 0.75} (0xc000000000000000, 0x3fe8000000000000)
  write_bytes(dir.file("f64"), {0, 0, 0x0E, 1, 0, 0, 0, 2, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0x3f, 0xe8, 0, 0, 0, 0, 0, 0});
  IdxArray c = read_idx(dir.file("f64"));
  CHECK(c.value(0) == -2);
  CHECK(c.value(1) == 0.75);
  // write_idx writes exactly these big-endian bytes back
  write_idx(dir.file("f64_out"), c, false);
  CHECK(read_bytes(dir.file("f64_out")) == read_bytes(dir.file("f64")));
}

TEST_CASE("write_idx round-trips raw and gzip files of every element type") {
  TempDir dir("idx_rt");
  for (IdxType type : {IdxType::u8, IdxType::i8, IdxType::i16, IdxType::i32, IdxType::f32, IdxType::f64}) {
    IdxArray a;
    a.type = type;
    a.dims = {3, 2};
    a.bytes.resize(6 * idx_type_size(type));
    for (size_t i = 0; i < a.bytes.size(); ++i) a.bytes[i] = static_cast<uint8_t>(i * 37 + 1);
    for (bool gz : {false, true}) {
      const std::string path = dir.file(std::string(idx_type_name(type)) + (gz ? ".gz" : ""));
      write_idx(path, a, gz);
      IdxArray b = read_idx(path);
      CHECK(b.type == type);
      CHECK(b.dims == a.dims);
      CHECK(b.bytes == a.bytes);
      // gzip output really is compressed (magic 1f 8b), raw output is not
      CHECK((read_bytes(path)[0] == 0x1f) == gz);
    }
  }
}

TEST_CASE("read_idx rejects corrupt files with an error naming the file") {
  TempDir dir("idx_bad");
  auto check_error = [&](const std::string& name, const std::vector<uint8_t>& bytes, const std::string& expected) {
    CAPTURE(name);
    write_bytes(dir.file(name), bytes);
    std::string msg = idx_error(dir.file(name));
    CHECK(msg.find(dir.file(name)) != std::string::npos);
    CHECK(msg.find(expected) != std::string::npos);
  };
  check_error("empty", {}, "too short");
  check_error("magic", {0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 1, 7}, "bad magic");
  check_error("type", {0, 0, 0x07, 1, 0, 0, 0, 1, 7}, "bad magic");
  check_error("rank0", {0, 0, 0x08, 0}, "bad magic");
  check_error("header", {0, 0, 0x08, 3, 0, 0, 0, 2}, "truncated header");
  check_error("short", {0, 0, 0x08, 1, 0, 0, 0, 4, 1, 2, 3}, "truncated");
  check_error("long", {0, 0, 0x08, 1, 0, 0, 0, 2, 1, 2, 3}, "trailing data");
  // A lying header: 2^32-1 cubed bytes would overflow 64 bits; it must be refused, not allocated.
  check_error("huge", {0, 0, 0x08, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1},
              "more than 4 GiB");
  // float64 × (2^29 + 1) is 8 bytes over 4 GiB in a single dimension; exactly 4 GiB passes the limit
  check_error("over4g", {0, 0, 0x0E, 1, 0x20, 0, 0, 0x01, 1}, "more than 4 GiB");
  check_error("at4g", {0, 0, 0x0E, 1, 0x20, 0, 0, 0, 1}, "size mismatch");
  // 1 GB announced, 2 bytes present: a size mismatch found before any allocation.
  check_error("lying", {0, 0, 0x08, 1, 0x40, 0, 0, 0, 1, 2}, "size mismatch");
  CHECK(idx_error(dir.file("missing")).find("No such file or directory") != std::string::npos);
  CHECK(idx_error(dir.path.string()).find("Is a directory") != std::string::npos);
}

TEST_CASE("read_idx rejects truncated, lying and garbled gzip files") {
  TempDir dir("idx_gz");
  IdxArray a = testing::make_u8({50, 28, 28}, [](int64_t i) { return (i * 13) % 251; });
  write_idx(dir.file("good.gz"), a, true);
  REQUIRE(read_idx(dir.file("good.gz")).bytes == a.bytes);
  std::vector<uint8_t> gz = read_bytes(dir.file("good.gz"));

  // cut in half: the stream ends early
  write_bytes(dir.file("cut.gz"), std::vector<uint8_t>(gz.begin(), gz.begin() + static_cast<long>(gz.size() / 2)));
  std::string msg = idx_error(dir.file("cut.gz"));
  CHECK(msg.find("cut.gz") != std::string::npos);
  CHECK(!msg.empty());

  // garbage in the middle of the deflate stream
  std::vector<uint8_t> garbled = gz;
  for (size_t i = 20; i < 60 && i < garbled.size(); ++i) garbled[i] ^= 0xa5;
  write_bytes(dir.file("garbled.gz"), garbled);
  CHECK(idx_error(dir.file("garbled.gz")).find("garbled.gz") != std::string::npos);

  // a compressed header announcing 1e9 images with 2 bytes of payload: "truncated", and the
  // reader only ever allocates what was really decompressed
  const std::vector<uint8_t> liar = {0, 0, 0x08, 1, 0x3b, 0x9a, 0xca, 0x00, 1, 2};
  gzFile f = gzopen(dir.file("liar.gz").c_str(), "wb");
  REQUIRE(f != nullptr);
  gzwrite(f, liar.data(), static_cast<unsigned>(liar.size()));
  gzclose(f);
  CHECK(idx_error(dir.file("liar.gz")).find("only 2 present") != std::string::npos);
}

TEST_CASE("read_idx refuses a gzip payload one byte short, and reads it complete") {
  TempDir dir("idx_short");
  auto gz = [&](const std::string& name, const std::vector<uint8_t>& raw) {
    gzFile f = gzopen(dir.file(name).c_str(), "wb");
    REQUIRE(f != nullptr);
    gzwrite(f, raw.data(), static_cast<unsigned>(raw.size()));
    gzclose(f);
  };
  gz("full.gz", {0, 0, 0x08, 1, 0, 0, 0, 4, 1, 2, 3, 4});
  CHECK(read_idx(dir.file("full.gz")).bytes == std::vector<uint8_t>{1, 2, 3, 4});
  gz("short.gz", {0, 0, 0x08, 1, 0, 0, 0, 4, 1, 2, 3});
  CHECK(idx_error(dir.file("short.gz")).find("only 3 present") != std::string::npos);
}

TEST_CASE("load_mnist reads a directory of raw or .gz files") {
  for (bool gz : {false, true}) {
    CAPTURE(gz);
    TempDir dir("mnist");
    testing::write_toy_mnist(dir.path.string(), 30, 12, gz);
    auto train = load_mnist(dir.path.string(), Split::train);
    auto test = load_mnist(dir.path.string(), Split::test);
    CHECK(train->size() == 30);
    CHECK(test->size() == 12);
    CHECK(train->images().shape() == Shape{30, 1, 28, 28});
    CHECK(train->images().dtype() == DType::f32);
    CHECK(train->labels().dtype() == DType::i64);
    std::vector<double> xs = train->images().to_vector();
    CHECK(*std::max_element(xs.begin(), xs.end()) <= 1.0);
    CHECK(*std::max_element(xs.begin(), xs.end()) > 0.7);
    for (double y : train->labels().to_vector()) CHECK((y >= 0 && y <= 9));
  }
}

TEST_CASE("load_mnist explains missing and inconsistent files") {
  TempDir dir("mnist_bad");
  const std::string d = dir.path.string();
  auto error_of = [&](Split s) -> std::string {
    try {
      load_mnist(d, s);
    } catch (const DatasetError& e) {
      return e.what();
    }
    return "";
  };
  CHECK(error_of(Split::train).find("train-images-idx3-ubyte") != std::string::npos);
  testing::write_toy_mnist(d, 10, 5);
  // label count differs from image count
  write_idx(d + "/t10k-labels-idx1-ubyte", testing::make_u8({4}, [](int64_t) { return 1; }));
  CHECK(error_of(Split::test).find("4 labels") != std::string::npos);
  // a label outside 0..9
  write_idx(d + "/t10k-labels-idx1-ubyte", testing::make_u8({5}, [](int64_t i) { return i == 3 ? 10 : 1; }));
  CHECK(error_of(Split::test).find("label 10 at index 3") != std::string::npos);
  // images of the wrong rank
  write_idx(d + "/t10k-images-idx3-ubyte", testing::make_u8({5, 784}, [](int64_t) { return 0; }));
  CHECK(error_of(Split::test).find("rank 3") != std::string::npos);
  CHECK_THROWS_AS(load_mnist(d + "/nope", Split::train), DatasetError);
}

TEST_CASE("IdxReader reads the header first, and load_mnist enforces a size limit before allocating") {
  TempDir dir("idx_reader");
  const std::string d = dir.path.string();
  testing::write_toy_mnist(d, 30, 12, /*gzip=*/true);
  IdxReader r(d + "/train-images-idx3-ubyte.gz");
  CHECK(r.type() == IdxType::u8);
  CHECK(r.dims() == std::vector<int64_t>{30, 28, 28});
  CHECK(r.payload_bytes() == 30u * 784u);
  std::vector<uint8_t> direct(r.payload_bytes());
  r.read_into(direct.data());
  CHECK(direct == read_idx(d + "/train-images-idx3-ubyte.gz").bytes);
  // the limit: 30 images of 784 bytes are 23,520 bytes
  auto error_of = [&](uint64_t max_bytes) -> std::string {
    try {
      load_mnist(d, Split::train, max_bytes);
    } catch (const DatasetError& e) {
      return e.what();
    }
    return "";
  };
  CHECK(error_of(23519).find("30 images are 23520 bytes, over the limit of 23519 bytes") != std::string::npos);
  CHECK(error_of(23520).empty());
  CHECK(load_mnist(d, Split::train, 23520)->images().to_vector() == load_mnist(d, Split::train)->images().to_vector());
}
