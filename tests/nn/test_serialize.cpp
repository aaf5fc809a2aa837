// safetensors: round trip, byte layout, state-dict checks, corrupt and truncated files, atomic
// writes.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;

namespace {
std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::string with_header(const std::string& json, const std::string& data) {
  uint64_t n = json.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + json + data;
}
std::shared_ptr<nn::Sequential> make_model() {
  return std::make_shared<nn::Sequential>(nn::Linear(4, 6), nn::BatchNorm1d(6), nn::ReLU(), nn::Linear(6, 3));
}
}  // namespace

TEST_CASE("save → load round trip gives identical outputs") {
  const std::string path = "nn_roundtrip_test.safetensors";
  auto a = make_model();
  a->train();
  (*a)(randn({8, 4}));  // moves the running statistics
  a->eval();
  nn::save(*a, path);
  auto b = make_model();
  Tensor w_before = b->parameters()[0];
  const float* storage = w_before.data<float>();
  nn::load(*b, path);
  b->eval();
  Tensor x = randn({5, 4});
  CHECK((*a)(x).to_vector() == (*b)(x).to_vector());
  CHECK(b->parameters()[0].data<float>() == storage);  // loaded into existing storage
  CHECK(b->named_buffers()[2].second.item() == 1);     // num_batches_tracked (int64)
  std::remove(path.c_str());
}

TEST_CASE("the file layout is safetensors") {
  const std::string path = "nn_layout_test.safetensors";
  nn::save_safetensors({{"w", tensor({1, 2, 3, 4, 5, 6}, {2, 3})}, {"i", index_tensor({7})}}, path);
  std::string bytes = read_all(path);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  std::string header = bytes.substr(8, n);
  CHECK(header.find(R"("w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})") != std::string::npos);
  CHECK(header.find(R"("i":{"dtype":"I64","shape":[1],"data_offsets":[24,32]})") != std::string::npos);
  CHECK(bytes.size() == 8 + n + 32);
  float second;
  std::memcpy(&second, bytes.data() + 8 + n + 4, 4);
  CHECK(second == 2.0f);
  auto loaded = nn::load_safetensors(path);
  REQUIRE(loaded.size() == 2);
  CHECK(loaded[0].first == "w");
  CHECK(loaded[0].second.to_vector() == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(loaded[1].second.dtype() == DType::i64);
  std::remove(path.c_str());
}

TEST_CASE("bool tensors are saved as BOOL, one byte each, and other bytes are refused on load") {
  const std::string path = "nn_bool_test.safetensors";
  nn::save_safetensors({{"mask", tensor({1, 0, 0, 1, 1}, DType::b8)}}, path);
  std::string bytes = read_all(path);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(bytes.substr(8, n).find(R"("mask":{"dtype":"BOOL","shape":[5],"data_offsets":[0,5]})") != std::string::npos);
  CHECK(bytes.substr(8 + n) == std::string("\x01\x00\x00\x01\x01", 5));
  auto loaded = nn::load_safetensors(path);
  REQUIRE(loaded.size() == 1);
  CHECK(loaded[0].second.dtype() == DType::b8);
  CHECK(loaded[0].second.to_vector() == std::vector<double>{1, 0, 0, 1, 1});
  bytes[8 + n + 2] = 7;  // not a valid bool
  write_all(path, bytes);
  CHECK_THROWS_WITH_AS(nn::load_safetensors(path), doctest::Contains("'mask' is BOOL but holds a byte other than 0 or 1"),
                       std::runtime_error);
  std::remove(path.c_str());
}

TEST_CASE("0-size tensors share an offset with their neighbour and load back") {
  // save_safetensors gives an empty tensor the offset of the next one: [8, 8] beside [8, 16].
  const std::string path = "nn_empty_tensors_test.safetensors";
  const nn::NamedTensors saved{{"first", zeros({0})},        {"a", tensor({1, 2})},
                               {"z", zeros({3, 0}, DType::f64)}, {"b", tensor({3, 4})},
                               {"last", index_tensor({})}};
  nn::save_safetensors(saved, path);
  auto loaded = nn::load_safetensors(path);
  REQUIRE(loaded.size() == saved.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    CAPTURE(saved[i].first);
    CHECK(loaded[i].first == saved[i].first);  // file order is the saved order
    CHECK(loaded[i].second.shape() == saved[i].second.shape());
    CHECK(loaded[i].second.dtype() == saved[i].second.dtype());
    CHECK(loaded[i].second.to_vector() == saved[i].second.to_vector());
  }
  // An empty range between two overlapping ones does not hide the overlap.
  write_all(path, with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              "123456789012"));
  CHECK_THROWS_WITH_AS(nn::load_safetensors(path), doctest::Contains("tensors 'a' and 'b' overlap"), std::runtime_error);
  std::remove(path.c_str());
}

TEST_CASE("load_state_dict reports every mismatch at once and changes nothing") {
  auto m = make_model();
  auto state = m->state_dict();
  state[0].second = zeros({6, 5});                  // wrong shape
  state[1].second = zeros({6}, DType::f64);         // wrong dtype
  state.pop_back();                                 // missing key
  state.emplace_back("extra.weight", zeros({1}));  // unexpected key
  Tensor before = m->parameters()[3].clone();
  try {
    m->load_state_dict(state);
    FAIL("expected an error");
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    CHECK(msg.find("4 problem(s)") != std::string::npos);
    CHECK(msg.find("'0.weight': expected float32 [6, 4], got float32 [6, 5]") != std::string::npos);
    CHECK(msg.find("'0.bias'") != std::string::npos);
    CHECK(msg.find("missing key '3.bias'") == std::string::npos);  // 3.bias is present
    CHECK(msg.find("unexpected key 'extra.weight'") != std::string::npos);
  }
  CHECK(m->parameters()[3].to_vector() == before.to_vector());
  // non-strict: unknown and missing keys are skipped, the rest is loaded
  auto good = make_model()->state_dict();
  good.pop_back();
  good.emplace_back("extra", zeros({1}));
  CHECK_NOTHROW(m->load_state_dict(good, false));
  CHECK(m->parameters()[0].to_vector() == good[0].second.to_vector());
  CHECK_THROWS_AS(m->load_state_dict(good, true), std::invalid_argument);
}

TEST_CASE("corrupt and truncated files are clear errors") {
  const std::string path = "nn_corrupt_test.safetensors";
  nn::save_safetensors({{"w", tensor({1, 2, 3, 4})}}, path);
  const std::string good = read_all(path);
  auto expect_error = [&](const std::string& bytes, const char* fragment) {
    write_all(path, bytes);
    CHECK_THROWS_WITH_AS(nn::load_safetensors(path), doctest::Contains(fragment), std::runtime_error);
  };
  expect_error(good.substr(0, 5), "fewer than the 8-byte");
  expect_error(good.substr(0, 20), "exceeds the file size");
  expect_error(good.substr(0, good.size() - 3), "outside the data section");
  expect_error(with_header("{not json", ""), "not valid JSON");
  expect_error(with_header("[1,2]", ""), "not a JSON object");
  expect_error(with_header(R"({"w":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}})", "xx"), "unsupported dtype");
  expect_error(with_header(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678"), "needs 12");
  expect_error(with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", "123456789012"), "needs 8");
  expect_error(with_header(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "1234"), "non-natural");
  expect_error(with_header(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", "12345678"), "outside");
  expect_error(with_header(R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})", "1234"),
               "too large");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           "123456789012"),
               "overlap");
  expect_error(with_header(R"({"w":{"dtype":"F32"}})", ""), "needs dtype, shape and data_offsets");
  std::remove(path.c_str());
  CHECK_THROWS_WITH_AS(nn::load_safetensors("does/not/exist.safetensors"), doctest::Contains("cannot open"),
                       std::runtime_error);
}

TEST_CASE("the header screen allows exactly max_depth levels of nesting") {
  auto nested = [](int depth) {
    return std::string(static_cast<size_t>(depth), '[') + std::string(static_cast<size_t>(depth), ']');
  };
  CHECK_NOTHROW(nn::detail::parse_untrusted_json(nested(64)));
  CHECK_THROWS_WITH_AS(nn::detail::parse_untrusted_json(nested(65)), doctest::Contains("deeper than 64"),
                       std::invalid_argument);
  CHECK_NOTHROW(nn::detail::parse_untrusted_json(R"({"a": {"b": [1]}})", 3));
  CHECK_THROWS_AS(nn::detail::parse_untrusted_json(R"({"a": {"b": [[1]]}})", 3), std::invalid_argument);
}

TEST_CASE("saving is atomic and validates names") {
  const std::string path = "nn_atomic_test.safetensors";
  nn::save_safetensors({{"w", tensor({1, 2})}}, path);
  const std::string before = read_all(path);
  // an invalid save (repeated name) throws before touching the old file
  CHECK_THROWS_AS(nn::save_safetensors({{"a", tensor({1})}, {"a", tensor({2})}}, path), std::invalid_argument);
  CHECK(read_all(path) == before);
  // an unwritable destination leaves nothing behind
  CHECK_THROWS_AS(nn::save_safetensors({{"w", tensor({1})}}, "no/such/dir/x.safetensors"), std::runtime_error);
  CHECK_THROWS_AS(nn::save_safetensors({{"w", Tensor()}}, path), std::invalid_argument);
  CHECK(read_all(path) == before);
  std::remove(path.c_str());
}

TEST_CASE("load_safetensors' header limit can be raised for files that need it") {
  const std::string path = "serialize_big_header.safetensors";
  nn::save_safetensors({{"w", tensor({1.0, 2.0}, {2})}}, path, {{"notes", std::string(100000, 'n')}});
  CHECK_THROWS_WITH_AS(nn::load_safetensors(path, nullptr, 50000), doctest::Contains("exceeds the limit of 50000 bytes"),
                       std::runtime_error);
  nn::Metadata meta;
  auto loaded = nn::load_safetensors(path, &meta, 200000);
  REQUIRE(loaded.size() == 1);
  CHECK(meta.at("notes").size() == 100000);
  CHECK(nn::load_safetensors(path).size() == 1);  // the 16 MiB default
  std::remove(path.c_str());
}
