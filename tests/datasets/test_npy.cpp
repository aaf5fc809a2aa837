// .npy / .npz reader and writer: round trips, files written by NumPy itself (tests/datasets/fixtures,
// made by scripts/make_npy_fixtures.py), and malformed files.
#include <doctest/doctest.h>
#include <zlib.h>

#include <cstring>
#include <fstream>

#include "datasets/datasets.hpp"
#include "datasets/fixture_mnist.hpp"
#include "datasets/loader_helpers.hpp"

using namespace tapegrad;
using namespace tapegrad::datasets;
using tapegrad::testing::error_of;
using tapegrad::testing::read_bytes;
using tapegrad::testing::TempDir;
using tapegrad::testing::write_bytes;

namespace {
const std::string kFixtures = std::string(TAPEGRAD_TESTS_DIR) + "/datasets/fixtures/";

// The fixture script's ramp(): 0, 1, ..., n-1; ×0.5 − 1 for floating types; i % 3 == 1 for bool.
std::vector<double> ramp(int64_t n, NpyType type) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) {
    if (type == NpyType::f32 || type == NpyType::f64)
      v.push_back(static_cast<double>(i) * 0.5 - 1);
    else if (type == NpyType::b1)
      v.push_back(i % 3 == 1);
    else
      v.push_back(static_cast<double>(i));
  }
  return v;
}
// An .npy file: the magic, version 1.0, and `dict` padded to 64 bytes, then `payload`.
std::vector<uint8_t> npy_file(std::string dict, const std::vector<uint8_t>& payload, uint8_t major = 1) {
  const size_t prefix = major == 1 ? 10 : 12;
  dict.append((64 - (prefix + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  std::string head = std::string("\x93NUMPY") + static_cast<char>(major) + '\0';
  for (size_t i = 0; i < prefix - 8; ++i) head += static_cast<char>(dict.size() >> (8 * i));
  head += dict;
  std::vector<uint8_t> out(head.size() + payload.size());
  std::memcpy(out.data(), head.data(), head.size());
  if (!payload.empty()) std::memcpy(out.data() + head.size(), payload.data(), payload.size());
  return out;
}
NpyArray pattern(NpyType type, std::vector<int64_t> shape) {
  NpyArray a;
  a.type = type;
  a.shape = std::move(shape);
  a.bytes.resize(static_cast<size_t>(a.numel()) * npy_type_size(type));
  for (size_t i = 0; i < a.bytes.size(); ++i)
    a.bytes[i] = static_cast<uint8_t>(type == NpyType::b1 ? i % 2 : i * 37 + 11);
  return a;
}
const std::vector<NpyType> kTypes = {NpyType::f32, NpyType::f64, NpyType::i64, NpyType::u8, NpyType::b1};
const std::vector<std::vector<int64_t>> kShapes = {{}, {3}, {2, 3}, {2, 1, 3}, {2, 3, 1, 2}, {0, 4}};
}  // namespace

TEST_CASE("npy: every type and ranks 0-4 round-trip through write_npy / read_npy byte for byte") {
  TempDir dir("npy_rt");
  for (NpyType type : kTypes) {
    for (const auto& shape : kShapes) {
      CAPTURE(npy_type_name(type));
      CAPTURE(shape.size());
      const NpyArray a = pattern(type, shape);
      write_npy(dir.file("a.npy"), a);
      const NpyArray b = read_npy(dir.file("a.npy"));
      CHECK(b.type == type);
      CHECK(b.shape == shape);
      CHECK(b.bytes == a.bytes);
      // the data starts on a multiple of 64 bytes, as numpy.save aligns it
      CHECK(read_bytes(dir.file("a.npy")).size() % 64 == a.bytes.size() % 64);
    }
  }
}

TEST_CASE("npy: tensors of every dtype round-trip through save_npy / load_npy, uint8 through int64") {
  TempDir dir("npy_tensor");
  for (DType dtype : {DType::f32, DType::f64, DType::i64, DType::b8}) {
    for (const auto& shape : kShapes) {
      CAPTURE(dtype_name(dtype));
      const Shape s(shape);
      std::vector<double> values;
      for (int64_t i = 0; i < s.numel(); ++i) values.push_back(dtype == DType::b8 ? i % 2 : (i - 3) * 1.25);
      const Tensor t = tensor(values, s, dtype);
      save_npy(dir.file("t.npy"), t);
      const Tensor u = load_npy(dir.file("t.npy"));
      CHECK(u.dtype() == dtype);
      CHECK(u.shape() == s);
      CHECK(u.to_vector() == t.to_vector());
    }
  }
  // int64 values 0..255 write as uint8 and come back as int64, or as float32 when asked
  const Tensor labels = index_tensor({0, 7, 255, 3}, {2, 2});
  save_npy(dir.file("u8.npy"), labels, NpyType::u8);
  CHECK(read_npy(dir.file("u8.npy")).type == NpyType::u8);
  CHECK(read_bytes(dir.file("u8.npy")).size() == 128 + 4);
  const Tensor back = load_npy(dir.file("u8.npy"));
  CHECK(back.dtype() == DType::i64);
  CHECK(back.to_vector() == labels.to_vector());
  const Tensor pixels = load_npy(dir.file("u8.npy"), DType::f32);
  CHECK(pixels.dtype() == DType::f32);
  CHECK(pixels.to_vector() == std::vector<double>{0, 7, 255, 3});
  // out of range, and conversions that would lose information, are refused
  CHECK(error_of([&] {
          tensor_to_npy(index_tensor({1, 256}), NpyType::u8);
        }).find("value 256 at flat index 1") != std::string::npos);
  CHECK(error_of([&] { tensor_to_npy(index_tensor({-1}), NpyType::u8); }).find("value -1") != std::string::npos);
  CHECK(error_of([&] { tensor_to_npy(tensor({1.5}), NpyType::u8); }).find("cannot write a float32 tensor as uint8") !=
        std::string::npos);
  CHECK(error_of([&] { tensor_to_npy(tensor({1.5}), NpyType::f64); }).find("t.to(DType::f64)") != std::string::npos);
  CHECK(error_of([&] {
          npy_to_tensor(pattern(NpyType::f32, {2}), DType::i64);
        }).find("cannot convert float32 to int64") != std::string::npos);
  CHECK(error_of([&] { npy_to_tensor(pattern(NpyType::u8, {2}), DType::b8); }).find("cannot convert uint8 to bool") !=
        std::string::npos);
}

TEST_CASE("npy: files written by numpy.save load with the values NumPy wrote") {
  struct Case {
    const char* file;
    NpyType type;
    std::vector<int64_t> shape;
  };
  const std::vector<Case> cases = {
      {"f4_2x3.npy", NpyType::f32, {2, 3}},
      {"f8_4.npy", NpyType::f64, {4}},
      {"i8_2x2x2.npy", NpyType::i64, {2, 2, 2}},
      {"u1_3x4.npy", NpyType::u8, {3, 4}},
      {"b1_5.npy", NpyType::b1, {5}},
      {"f4_empty_0x3.npy", NpyType::f32, {0, 3}},
      {"f4_2x3x4_fortran.npy", NpyType::f32, {2, 3, 4}},  // transposed into C order
      {"f8_3x2_bigendian.npy", NpyType::f64, {3, 2}},
      {"i8_3_bigendian.npy", NpyType::i64, {3}},
      {"f4_2x3_v2.npy", NpyType::f32, {2, 3}},
      {"i8_4_v3.npy", NpyType::i64, {4}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.file);
    const NpyArray a = read_npy(kFixtures + c.file);
    CHECK(a.type == c.type);
    CHECK(a.shape == c.shape);
    CHECK(npy_to_tensor(a).to_vector() == ramp(a.numel(), c.type));
    // plain little-endian C-order version 1.0 files: tapegrad writes the very bytes NumPy wrote
    const std::string f = c.file;
    if (f.find("fortran") == std::string::npos && f.find("bigendian") == std::string::npos &&
        f.find("_v") == std::string::npos)
      CHECK(npy_bytes(a) == read_bytes(kFixtures + c.file));
  }
  const Tensor scalar = load_npy(kFixtures + "f8_scalar.npy");
  CHECK(scalar.dim() == 0);
  CHECK(scalar.item() == 2.5);
  CHECK(npy_bytes(read_npy(kFixtures + "f8_scalar.npy")) == read_bytes(kFixtures + "f8_scalar.npy"));
  // the Fortran file's element (i, j, k) is the C-order ramp's, whatever the layout on disk
  const Tensor f = load_npy(kFixtures + "f4_2x3x4_fortran.npy");
  CHECK(f.at({1, 2, 3}) == (1 * 12 + 2 * 4 + 3) * 0.5 - 1);
  CHECK(f.at({0, 1, 0}) == 4 * 0.5 - 1);
}

TEST_CASE("npy: unsupported NumPy dtypes are refused with the descr and a way out") {
  std::string msg = error_of([] { read_npy(kFixtures + "i4_3.npy"); });
  CHECK(msg.find("i4_3.npy") != std::string::npos);
  CHECK(msg.find("dtype '<i4' is not supported") != std::string::npos);
  CHECK(msg.find("astype") != std::string::npos);
  CHECK(error_of([] { read_npy(kFixtures + "structured.npy"); }).find("structured dtypes are not supported") !=
        std::string::npos);
}

TEST_CASE("npy: malformed files are clear errors naming the file and the problem") {
  TempDir dir("npy_bad");
  const std::vector<uint8_t> six_f4(24, 0);
  auto check_error = [&](const std::string& name, const std::vector<uint8_t>& bytes, const std::string& expected) {
    testing::check_file_error(dir.file(name), bytes, expected, [](const std::string& p) { read_npy(p); });
    // load_npy, which reads straight into a tensor, refuses it alike
    CHECK(error_of([&] { load_npy(dir.file(name)); }) == error_of([&] { read_npy(dir.file(name)); }));
    // the same bytes in memory give the same diagnosis
    CHECK(error_of([&] { parse_npy(bytes.data(), bytes.size(), name); }).find(expected) != std::string::npos);
  };
  const std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  REQUIRE(parse_npy(npy_file(good, six_f4).data(), npy_file(good, six_f4).size(), "good").numel() == 6);
  check_error("empty", {}, "empty file");
  check_error("magic", {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0}, "bad magic");
  check_error("short", {0x93, 'N', 'U', 'M', 'P', 'Y', 1}, "too short");
  check_error("version", {0x93, 'N', 'U', 'M', 'P', 'Y', 4, 0, 0, 0, 0, 0}, "format version 4.0");
  check_error("minor", {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 1, 0, 0}, "format version 1.1");
  std::vector<uint8_t> cut = npy_file(good, six_f4);
  cut.resize(40);
  check_error("cut_header", cut, "truncated header");
  // a version 2.0 header length of 4 GiB − 1: refused before anything is allocated
  check_error("huge_header", {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xff, 0xff, 0xff, 0xff, '{'}, "over the limit");
  cut = npy_file(good, six_f4);
  cut.pop_back();
  check_error("truncated", cut, "truncated: the header says float32 (2, 3) = 24 payload bytes, the file has 23");
  cut = npy_file(good, six_f4);
  cut.push_back(0);
  check_error("trailing", cut, "trailing data");
  check_error("lying", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000), }", six_f4),
              "the file has 24");
  check_error("overflow", npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", {}),
              "more bytes than fit in memory");
  check_error("overflow_zero",
              npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4), }", {}),
              "more bytes than fit in memory");
  check_error("digits", npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", {}),
              "overflows 64 bits");
  check_error("missing", npy_file("{'descr': '<f4', 'shape': (2, 3), }", six_f4), "lacks the key 'fortran_order'");
  check_error("extra", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", six_f4),
              "unexpected key 'x'");
  check_error("twice", npy_file("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", six_f4),
              "'descr' appears twice");
  check_error("not_tuple", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (6)}", six_f4),
              "a 1-d shape is written (n,)");
  check_error("list", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': [6]}", six_f4), "is not a tuple");
  check_error("negative", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (-6,)}", six_f4),
              "non-negative integer");
  check_error("fortran", npy_file("{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}", six_f4), "not True or False");
  check_error("descr", npy_file("{'descr': '<f2', 'fortran_order': False, 'shape': (6,)}", six_f4),
              "dtype '<f2' is not supported");
  check_error("order", npy_file("{'descr': '|f4', 'fortran_order': False, 'shape': (6,)}", six_f4),
              "byte order '|' is not supported");
  check_error("after", npy_file(good + " x", six_f4), "unexpected text after the header dict");
  check_error("unterminated", npy_file("{'descr: '<f4'", six_f4), "expected ':'");
  check_error("bool", npy_file("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", {0, 1, 2}),
              "bool element 2 is the byte 2");
  // version 2.0 headers are read like 1.0 ones
  CHECK(parse_npy(npy_file(good, six_f4, 2).data(), npy_file(good, six_f4, 2).size(), "v2").shape ==
        std::vector<int64_t>{2, 3});
  CHECK(error_of([&] { read_npy(dir.file("nope.npy")); }).find("No such file or directory") != std::string::npos);
  CHECK(error_of([&] { read_npy(dir.path.string()); }).find("Is a directory") != std::string::npos);
}

TEST_CASE("npz: numpy.savez and savez_compressed files load every member in order") {
  for (const char* file : {"savez.npz", "savez_compressed.npz", "zip64_all.npz"}) {
    CAPTURE(file);
    const NamedArrays arrays = load_npz(kFixtures + file);
    std::vector<std::string> names;
    for (const auto& [name, t] : arrays) names.push_back(name);
    if (std::string(file) == "zip64_all.npz") {
      CHECK(names == std::vector<std::string>{"x", "y"});
    } else {
      CHECK(names == std::vector<std::string>{"x", "y", "w", "pixels", "mask", "s"});
      CHECK(find_array(arrays, "w").dtype() == DType::f64);
      CHECK(find_array(arrays, "w").to_vector() == ramp(4, NpyType::f64));
      CHECK(find_array(arrays, "pixels").dtype() == DType::i64);
      CHECK(find_array(arrays, "pixels").to_vector() == ramp(6, NpyType::u8));
      CHECK(find_array(arrays, "mask").dtype() == DType::b8);
      CHECK(find_array(arrays, "mask").to_vector() == ramp(3, NpyType::b1));
      CHECK(find_array(arrays, "s").dim() == 0);
      CHECK(find_array(arrays, "s").item() == 7.0);
    }
    CHECK(find_array(arrays, "x").shape() == Shape{4, 2});
    CHECK(find_array(arrays, "x").to_vector() == ramp(8, NpyType::f32));
    CHECK(find_array(arrays, "y").dtype() == DType::i64);
    CHECK(find_array(arrays, "y").to_vector() == ramp(4, NpyType::i64));
  }
  const NamedArrays positional = load_npz(kFixtures + "savez_positional.npz");
  REQUIRE(positional.size() == 2);
  CHECK(positional[0].first == "arr_0");
  CHECK(positional[1].second.to_vector() == ramp(3, NpyType::f64));
  CHECK(error_of([&] { find_array(positional, "x"); }).find("no array named 'x' (there are: 'arr_0', 'arr_1')") !=
        std::string::npos);
  CHECK(error_of([] { load_npz(kFixtures + "not_npy_member.npz"); }).find("member 'notes.txt': is not an .npy file") !=
        std::string::npos);
}

TEST_CASE("npz: write_npz round-trips every type, stored and compressed, and compresses") {
  TempDir dir("npz_rt");
  NamedNpyArrays arrays;
  for (NpyType type : kTypes)
    for (size_t r = 0; r < kShapes.size(); ++r)
      arrays.emplace_back(std::string(npy_type_name(type)) + "/rank" + std::to_string(r), pattern(type, kShapes[r]));
  arrays.emplace_back("zeros", NpyArray{NpyType::f64, {100, 100}, std::vector<uint8_t>(80000, 0)});
  for (bool compressed : {false, true}) {
    CAPTURE(compressed);
    const std::string path = dir.file(compressed ? "c.npz" : "s.npz");
    write_npz(path, arrays, compressed);
    const NamedNpyArrays back = read_npz(path);
    REQUIRE(back.size() == arrays.size());
    for (size_t i = 0; i < arrays.size(); ++i) {
      CAPTURE(arrays[i].first);
      CHECK(back[i].first == arrays[i].first);
      CHECK(back[i].second.type == arrays[i].second.type);
      CHECK(back[i].second.shape == arrays[i].second.shape);
      CHECK(back[i].second.bytes == arrays[i].second.bytes);
    }
    CHECK((read_bytes(path).size() < 80000) == compressed);
  }
  // the same arrays give the same bytes (fixed timestamps)
  write_npz(dir.file("again.npz"), arrays, true);
  CHECK(read_bytes(dir.file("again.npz")) == read_bytes(dir.file("c.npz")));
  // tensors, and an empty archive
  save_npz(dir.file("t.npz"), {{"x", tensor({1, 2, 3, 4}, {2, 2})}, {"y", index_tensor({0, 1})}}, true);
  const NamedArrays t = load_npz(dir.file("t.npz"));
  CHECK(find_array(t, "x").to_vector() == std::vector<double>{1, 2, 3, 4});
  CHECK(find_array(t, "y").dtype() == DType::i64);
  save_npz(dir.file("empty.npz"), {});
  CHECK(load_npz(dir.file("empty.npz")).empty());
  CHECK(error_of([&] {
          save_npz(dir.file("d.npz"), {{"a", tensor({1})}, {"a", tensor({2})}});
        }).find("the name 'a' appears twice") != std::string::npos);
  CHECK(error_of([&] { save_npz(dir.file("e.npz"), {{"", tensor({1})}}); }).find("empty") != std::string::npos);
}

TEST_CASE("npz: corrupt archives are clear errors naming the file and the member") {
  TempDir dir("npz_bad");
  const std::vector<uint8_t> stored = read_bytes(kFixtures + "savez.npz");
  const std::vector<uint8_t> packed = read_bytes(kFixtures + "savez_compressed.npz");
  auto check_error = [&](const std::string& name, const std::vector<uint8_t>& bytes, const std::string& expected) {
    testing::check_file_error(dir.file(name), bytes, expected, [](const std::string& p) { read_npz(p); });
  };
  // Offsets into savez.npz: members start at 0 (x.npy: a 30-byte local header, the name, a 20-byte
  // zip64 extra, then the data), the directory after the last member.
  auto find = [](const std::vector<uint8_t>& b, uint32_t sig, size_t from = 0) {
    for (size_t i = from; i + 4 <= b.size(); ++i) {
      uint32_t v;
      std::memcpy(&v, &b[i], 4);
      if (v == sig) return i;
    }
    return size_t{0};
  };
  const size_t cd = find(stored, 0x02014b50), end = find(stored, 0x06054b50);
  REQUIRE(cd > 0);
  REQUIRE(end > cd);

  check_error("empty", {}, "too short for a zip file");
  check_error("not_zip", std::vector<uint8_t>(100, 7), "no zip end-of-central-directory record");
  check_error("cut", std::vector<uint8_t>(stored.begin(), stored.begin() + static_cast<long>(stored.size() / 2)),
              "no zip end-of-central-directory record");
  std::vector<uint8_t> b = stored;
  b[30 + 5 + 20 + 130] ^= 1;  // a payload byte of x.npy
  check_error("crc", b, "member 'x.npy': CRC-32 mismatch");
  b = stored;
  b[cd + 10] = 12;  // bzip2
  check_error("method", b, "compression method 12 is not supported");
  b = stored;
  b[cd + 8] |= 1;
  check_error("encrypted", b, "encrypted members are not supported");
  b = stored;
  b[cd + 24] += 1;  // x.npy's size: 161, but a stored member's compressed size stays 160
  check_error("sizes", b, "a stored member's sizes disagree");
  b = stored;
  b[cd + 42] = 40;  // x.npy's local header offset moved into its own data
  check_error("offset", b, "member 'x.npy': no local header at offset 40");
  b = stored;
  const size_t y_entry = find(stored, 0x02014b50, cd + 4);
  std::memcpy(&b[y_entry + 42], &b[cd + 42], 4);  // y.npy's local header is x.npy's
  check_error("shared", b, "two members share one local header");
  b = stored;
  b[end + 16] ^= 4;  // the directory offset
  check_error("directory", b, "does not end where the end records begin");
  b = stored;
  b[end + 10] = 200;
  b[end + 8] = 200;
  check_error("count", b, "200 entries cannot fit");
  // a member whose .npy header lies about its shape
  b = stored;
  const size_t shape_at = find(stored, 0x65706168);  // "hape"
  REQUIRE(shape_at > 0);
  b[shape_at + 8] = '5';  // 'shape': (4, 2) → (5, 2) in x.npy; fix the CRC so only the shape lies
  {
    const uLong crc = crc32_z(0, &b[30 + 5 + 20], 160);
    for (int i = 0; i < 4; ++i) b[cd + 16 + i] = static_cast<uint8_t>(crc >> (8 * i));
  }
  check_error("shape_lie", b, "member 'x.npy': truncated: the header says float32 (5, 2) = 40 payload bytes");
  // compressed: a corrupt deflate stream, and an announced size that lies
  const size_t pcd = find(packed, 0x02014b50);
  b = packed;
  for (size_t i = 60; i < 90; ++i) b[i] ^= 0x5a;
  check_error("deflate", b, "member 'x.npy'");
  b = packed;
  b[pcd + 24] -= 1;  // x.npy announced one byte shorter than it decompresses to
  check_error("bomb", b, "decompresses to more than the 159 bytes the directory says");
  b = packed;
  b[pcd + 24] += 1;
  check_error("short_member", b, "holds 160 bytes, the directory says 161");
}
