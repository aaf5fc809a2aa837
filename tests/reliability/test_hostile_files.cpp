// Hostile files (issue 14): inputs built to crash, exhaust or hang the readers, and the OS errors
// that readers and writers meet. Each case failed (crashed, hung, or was accepted) before the fix.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "autograd/file_io.hpp"
#include "datasets/idx.hpp"
#include "datasets/mnist.hpp"
#include "nn/serialize.hpp"
#include "tests/datasets/fixture_mnist.hpp"
#include "tests/reliability/toy.hpp"
#include "train/run_state.hpp"

using namespace tapegrad;
namespace fs = std::filesystem;

namespace {
void write_file(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }
// A safetensors file: 8-byte little-endian header length, the JSON header, then `data`.
std::string safetensors(const std::string& json, const std::string& data = "") {
  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json + data;
}
// The message of the exception `f` throws ("" when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
std::string gzip(const std::string& raw) {
  uLongf size = compressBound(static_cast<uLong>(raw.size())) + 32;
  std::string out(size, '\0');
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}
// A ubyte IDX file of dims {n} holding 0, 1, 2, ...
std::string idx_labels(int n) {
  std::string raw = {0, 0, 0x08, 1, 0, 0, static_cast<char>(n >> 8), static_cast<char>(n & 0xff)};
  for (int i = 0; i < n; ++i) raw += static_cast<char>(i % 10);
  return raw;
}
}  // namespace

TEST_CASE("safetensors: arrays nested 100,000 deep in shape or dtype are refused, not recursed into") {
  testing::TempDir dir("deep");
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (const std::string& header : {R"({"w":{"dtype":"F32","shape":)" + deep + R"(,"data_offsets":[0,0]}})",
                                    R"({"w":{"dtype":)" + deep + R"(,"shape":[1],"data_offsets":[0,4]}})"}) {
    const std::string path = dir.file("deep.safetensors");
    write_file(path, safetensors(header));
    CAPTURE(header.substr(0, 30));
    const std::string msg = error_of([&] { nn::load_safetensors(path); });
    CHECK(msg.find("nest deeper than 64 levels") != std::string::npos);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.size() < 400);  // the JSON is never quoted whole
    CHECK(error_of([&] { train::load_run_state(path); }).find("nest deeper") != std::string::npos);
    auto model = testing::mlp();
    CHECK(error_of([&] { nn::load(*model, path); }).find("nest deeper") != std::string::npos);
  }
  // Deep but within the limit is an ordinary error, quoted short.
  const std::string path = dir.file("deep60.safetensors");
  write_file(path, safetensors(R"({"w":{"dtype":"F32","shape":)" + std::string(60, '[') + std::string(60, ']') +
                               R"(,"data_offsets":[0,0]}})"));
  const std::string msg = error_of([&] { nn::load_safetensors(path); });
  CHECK(msg.find("has a non-natural dimension") != std::string::npos);
  CHECK(msg.find("[[[[[[[[[[") != std::string::npos);
  CHECK(msg.size() < 400);
}

TEST_CASE("safetensors: a header over 16 MiB is refused before it is read") {
  testing::TempDir dir("big_header");
  const std::string path = dir.file("big.safetensors");
  // A valid 17 MiB header: one metadata string.
  const std::string header = R"({"__metadata__":{"pad":")" + std::string(17u << 20, 'x') + R"("}})";
  write_file(path, safetensors(header));
  const auto t0 = std::chrono::steady_clock::now();
  const std::string msg = error_of([&] { nn::load_safetensors(path); });
  CHECK(msg.find("exceeds the limit of 16777216 bytes") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
  CHECK(error_of([&] { train::load_run_state(path); }).find("exceeds the limit") != std::string::npos);
}

TEST_CASE("safetensors: a tensor name given twice is refused, not 'last one wins'") {
  testing::TempDir dir("dup");
  const std::string path = dir.file("dup.safetensors");
  write_file(path, safetensors(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                               std::string(8, '\0')));
  const std::string msg = error_of([&] { nn::load_safetensors(path); });
  CHECK(msg.find("key \"w\" appears twice in one object") != std::string::npos);
  CHECK(msg.find(path) != std::string::npos);
  // ... inside a tensor's entry too, and in the metadata
  write_file(path, safetensors(R"({"w":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})",
                               std::string(4, '\0')));
  CHECK(error_of([&] { nn::load_safetensors(path); }).find("\"dtype\" appears twice") != std::string::npos);
  write_file(path, safetensors(R"({"__metadata__":{"epoch":"1","epoch":"2"}})"));
  CHECK(error_of([&] { train::load_run_state(path); }).find("\"epoch\" appears twice") != std::string::npos);
  // The same key in two different objects is fine.
  write_file(path, safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                               std::string(8, '\0')));
  CHECK(nn::load_safetensors(path).size() == 2);
}

TEST_CASE("IDX: bytes after the last gzip member are refused, as raw trailing bytes are") {
  testing::TempDir dir("gz_trailing");
  const std::string path = dir.file("labels.gz");
  const std::string raw = idx_labels(20);
  write_file(path, gzip(raw) + "garbage after the stream");
  std::string msg = error_of([&] { datasets::read_idx(path); });
  CHECK(msg.find("trailing data after the gzip stream") != std::string::npos);
  CHECK(msg.find(path) != std::string::npos);
  write_file(path, gzip(raw) + std::string(1, '\0'));  // even one zero byte
  CHECK(error_of([&] { datasets::read_idx(path); }).find("trailing data") != std::string::npos);
  // Concatenated gzip members are one stream (gzip(1) reads them so): still accepted.
  write_file(path, gzip(raw.substr(0, 11)) + gzip(raw.substr(11)));
  CHECK(datasets::read_idx(path).bytes.size() == 20);
  // Extra decompressed bytes are refused too.
  write_file(path, gzip(raw + "x"));
  CHECK(error_of([&] { datasets::read_idx(path); }).find("trailing data after the 20 payload bytes") !=
        std::string::npos);
}

TEST_CASE("readers refuse a FIFO at once instead of blocking, and report the system's reason") {
  testing::TempDir dir("fifo");
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(error_of([&] { datasets::read_idx(fifo); }).find("cannot open '" + fifo + "': not a regular file (a FIFO)") !=
        std::string::npos);
  CHECK(error_of([&] { nn::load_safetensors(fifo); }).find("not a regular file (a FIFO)") != std::string::npos);
  CHECK(error_of([&] { train::load_run_state(fifo); }).find("not a regular file (a FIFO)") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  // a symlink loop, a directory, a missing file
  const std::string loop = dir.file("loop");
  REQUIRE(::symlink(loop.c_str(), loop.c_str()) == 0);
  CHECK(error_of([&] {
          datasets::read_idx(loop);
        }).find("cannot open '" + loop + "': Too many levels of symbolic links") != std::string::npos);
  CHECK(error_of([&] { nn::load_safetensors(loop); }).find("Too many levels of symbolic links") != std::string::npos);
  CHECK(error_of([&] { nn::load_safetensors(dir.path.string()); }).find("Is a directory") != std::string::npos);
  CHECK(error_of([&] { nn::load_safetensors(dir.file("missing")); }).find("No such file or directory") !=
        std::string::npos);
  // Permission denied: only meaningful when not root (root reads anything).
  const std::string locked = dir.file("locked.safetensors");
  nn::save_safetensors({}, locked);
  ::chmod(locked.c_str(), 0);
  if (::geteuid() != 0) {
    CHECK(error_of([&] { nn::load_safetensors(locked); }).find("Permission denied") != std::string::npos);
  } else {
    MESSAGE("running as root: the Permission denied case is skipped");
  }
}

TEST_CASE("writers report the system's reason and leave no temporary behind") {
  testing::TempDir dir("writers");
  // The target is a directory: the rename fails.
  fs::create_directories(dir.path / "target");
  const std::string msg = error_of([&] { nn::save_safetensors({}, dir.file("target")); });
  CHECK(msg.find("Is a directory") != std::string::npos);
  CHECK(msg.find("tapegrad::nn::save_safetensors") != std::string::npos);
  const std::string idx_msg =
      error_of([&] { datasets::write_idx(dir.file("target"), testing::make_u8({3}, [](int64_t i) { return i; })); });
  CHECK(idx_msg.find("Is a directory") != std::string::npos);
  CHECK(idx_msg.find("write_idx") != std::string::npos);
  // A full disk: write_idx goes through the same checked atomic write as the safetensors writer.
  nn::testing::fail_writes_after(5);
  CHECK(error_of([&] {
          datasets::write_idx(dir.file("full.idx"), testing::make_u8({30}, [](int64_t i) { return i; }));
        }).find("No space left on device") != std::string::npos);
  nn::testing::fail_writes_after(-1);
  CHECK(!fs::exists(dir.file("full.idx")));
  size_t files = 0;
  for (auto& e : fs::directory_iterator(dir.path)) files += e.path().filename() != "target";
  CHECK(files == 0);
}

TEST_CASE("stale temporaries of a killed save are removed by the next save or load of that path") {
  testing::TempDir dir("stale");
  const std::string path = dir.file("run.ckpt");
  // A pid that is no process: a child that has exited and been reaped.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  ::waitpid(child, nullptr, 0);
  const std::string dead = path + ".tmp." + std::to_string(child) + ".0";
  const std::string own = path + ".tmp." + std::to_string(::getpid()) + ".999999";  // no write of ours owns it
  const std::string live = path + ".tmp.1.0";                                       // pid 1 is alive
  const std::string not_ours = path + ".tmp.notes";                                 // not of our naming
  const std::string other = dir.file("other.ckpt") + ".tmp." + std::to_string(child) + ".0";  // another path's
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    for (const auto& f : {dead, own, live, not_ours, other}) write_file(f, "partial");
    if (round == 0)
      nn::save_safetensors({}, path);
    else
      nn::load_safetensors(path);
    CHECK(!fs::exists(dead));
    CHECK(!fs::exists(own));
    CHECK(fs::exists(live));
    CHECK(fs::exists(not_ours));
    CHECK(fs::exists(other));
  }
}

TEST_CASE("a save in flight keeps its temporary while another thread removes stale ones") {
  // Only concurrency shows it: a cleaner that took this process's live temporary for a stale one
  // would delete it mid-write, and the save's rename would fail. (Correct code cannot fail here;
  // a wrong one could, rarely, go unnoticed if the cleaner never runs during a write.)
  testing::TempDir dir("in_flight");
  const std::string path = dir.file("big.safetensors");
  const Tensor big = zeros({4, 1 << 20});  // 16 MiB: each write and fsync gives the cleaner time to look
  std::atomic<bool> done{false};
  std::atomic<int> sweeps{0};
  std::thread cleaner([&] {
    while (!done.load()) {
      io::remove_stale_temporaries(path);
      ++sweeps;
    }
  });
  std::string error;
  for (int i = 0; i < 3 && error.empty(); ++i) error = error_of([&] { nn::save_safetensors({{"w", big}}, path); });
  done = true;
  cleaner.join();
  CHECK(error == "");
  CHECK(sweeps.load() > 0);
  CHECK(nn::load_safetensors(path).size() == 1);
}

TEST_CASE("an MNIST directory with zero images is an error, not an empty dataset") {
  testing::TempDir dir("mnist_empty");
  const std::string d = dir.path.string();
  testing::write_toy_mnist(d, 10, 5);
  datasets::write_idx(d + "/t10k-images-idx3-ubyte", testing::make_u8({0, 28, 28}, [](int64_t) { return 0; }));
  datasets::write_idx(d + "/t10k-labels-idx1-ubyte", testing::make_u8({0}, [](int64_t) { return 0; }));
  const std::string msg = error_of([&] { datasets::load_mnist(d, datasets::Split::test); });
  CHECK(msg.find("holds no images") != std::string::npos);
  CHECK(msg.find("t10k-images-idx3-ubyte") != std::string::npos);
  // read_idx itself returns empty arrays (documented): only a dataset needs samples.
  CHECK(datasets::read_idx(d + "/t10k-labels-idx1-ubyte").bytes.empty());
}
