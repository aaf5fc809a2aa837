// The examples end to end on a small, easy IDX set written here (no network, no real data):
// one short epoch, the files they write, and their errors on bad input.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "datasets/fixture_mnist.hpp"

#ifndef TAPEGRAD_EXAMPLES_DIR
#error "examples/CMakeLists.txt defines TAPEGRAD_EXAMPLES_DIR for this test"
#endif

using tapegrad::testing::TempDir;

namespace {
struct Result {
  int code;
  std::string output;  // stdout and stderr
};
// Runs an example binary with `args`, capturing its output and exit code.
Result run_example(const std::string& name, const std::string& args, const TempDir& dir) {
  const std::string log = dir.file("log.txt");
  const std::string cmd = std::string(TAPEGRAD_EXAMPLES_DIR) + "/" + name + " " + args + " > '" + log + "' 2>&1";
  int status = std::system(cmd.c_str());
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
}
std::string read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

TEST_CASE("mnist_mlp trains one epoch on a small IDX set and writes weights, metrics and curves") {
  TempDir dir("example_mlp");
  const std::string data = dir.file("data"), out = dir.file("out");
  std::filesystem::create_directories(data);
  tapegrad::testing::write_toy_mnist(data, 600, 200, /*gzip=*/true);
  Result r = run_example("mnist_mlp", "--data '" + data + "' --out '" + out +
                                          "' --epochs 1 --batch-size 16 --validation-split 0.1 --seed 3", dir);
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("600 training and 200 test images") != std::string::npos);
  CHECK(r.output.find("Epoch 1/1 - ") != std::string::npos);
  CHECK(r.output.find("val_accuracy: ") != std::string::npos);
  CHECK(r.output.find("Test loss ") != std::string::npos);
  CHECK(r.output.find("Confusion matrix") != std::string::npos);
  auto j = nlohmann::json::parse(read(out + "/metrics.json"));
  CHECK(j["history"]["epochs"].size() == 1);
  CHECK(j["test"]["samples"] == 200);
  CHECK(j["test"]["accuracy"].get<double>() > 0.8);  // the toy classes are bars on distinct rows
  CHECK(j["test"]["confusion_matrix"].size() == 10);
  CHECK(j["test"]["per_class"][3]["support"].get<int>() > 0);
  CHECK(j["config"]["batch_size"] == 16);
  CHECK(std::filesystem::file_size(out + "/model.safetensors") > 4 * (784 * 128 + 128 * 10));
  std::string svg = read(out + "/curves.svg");
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("polyline") != std::string::npos);

  // --quiet: no epoch lines; --help documents every flag
  Result quiet = run_example("mnist_mlp", "--quiet --data '" + data + "' --out '" + out + "' --epochs 1", dir);
  CHECK(quiet.code == 0);
  CHECK(quiet.output.find("Epoch 1/1") == std::string::npos);
  Result help = run_example("mnist_mlp", "--help", dir);
  CHECK(help.code == 0);
  for (const char* flag : {"--dataset", "--data", "--epochs", "--batch-size", "--lr", "--optimizer", "--threads",
                           "--seed", "--validation-split", "--patience", "--out", "--quiet"})
    CHECK(help.output.find(flag) != std::string::npos);
}

TEST_CASE("mnist_cnn runs a short epoch with another optimizer") {
  TempDir dir("example_cnn");
  const std::string data = dir.file("data");
  std::filesystem::create_directories(data);
  tapegrad::testing::write_toy_mnist(data, 128, 64);
  Result r = run_example("mnist_cnn", "--dataset mnist --data '" + data + "' --out '" + dir.file("out") +
                                          "' --epochs 1 --batch-size 32 --optimizer sgd --lr 0.05 --quiet", dir);
  INFO(r.output);
  REQUIRE(r.code == 0);
  auto j = nlohmann::json::parse(read(dir.file("out") + "/metrics.json"));
  CHECK(j["config"]["optimizer"] == "sgd");
  CHECK(j["history"]["steps"] == 4);
}

TEST_CASE("the examples reject bad input with a clear message and a non-zero exit code") {
  TempDir dir("example_bad");
  const std::string data = dir.file("data");
  std::filesystem::create_directories(data);
  tapegrad::testing::write_toy_mnist(data, 40, 20);
  auto fails = [&](const std::string& args, const std::string& message) {
    CAPTURE(args);
    Result r = run_example("mnist_mlp", args + " --out '" + dir.file("out") + "'", dir);
    INFO(r.output);
    CHECK(r.code != 0);
    CHECK(r.output.find(message) != std::string::npos);
  };
  fails("--data '" + dir.file("missing") + "'", "scripts/fetch_mnist.sh");
  fails("--dataset fashion-mnist --data '" + dir.file("missing") + "'", "--fashion-mnist");
  fails("--data '" + data + "' --batch-size 0", "--batch-size");
  fails("--data '" + data + "' --dataset cifar", "--dataset");
  fails("--data '" + data + "' --optimizer adamax", "--optimizer");
  fails("--data '" + data + "' --patience 2", "--validation-split");
  fails("--data '" + data + "' --epochs 0", "--epochs");
  // a corrupt file: the error names it
  std::ofstream(data + "/t10k-labels-idx1-ubyte", std::ios::binary | std::ios::trunc) << "not an idx file";
  fails("--data '" + data + "'", "t10k-labels-idx1-ubyte': bad magic number");
}

namespace {
// A small repetitive text: a tiny GPT learns it in a few dozen steps.
std::string write_text(const TempDir& dir, const std::string& name, const std::string& unit, int repeats) {
  std::string text;
  for (int i = 0; i < repeats; ++i) text += unit;
  std::ofstream(dir.file(name)) << text;
  return dir.file(name);
}
const char* kTinyGpt = " --block-size 16 --n-layer 1 --n-head 2 --n-embd 16 --batch-size 4 --eval-batches 2 --seed 1";
}  // namespace

TEST_CASE("char_gpt trains, writes weights, vocabulary, log and curve, samples, and resumes") {
  TempDir dir("example_gpt");
  const std::string text = write_text(dir, "text.txt", "abcabd é\n", 200), out = dir.file("out");
  Result r = run_example("char_gpt", "--text '" + text + "' --out '" + out + "' --iters 40 --eval-every 20 --warmup 5 "
                                     "--lr 1e-2 --sample 30 --prompt ab" + kTinyGpt, dir);
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("vocabulary 7") != std::string::npos);  // a b c d é space newline
  CHECK(r.output.find("iter    40: train loss ") != std::string::npos);
  CHECK(r.output.find("tokens/s with the key/value cache") != std::string::npos);
  auto log = nlohmann::json::parse(read(out + "/log.json"));
  CHECK(log["history"]["epochs"].size() == 3);  // iterations 0, 20, 40
  CHECK(log["val_loss"].get<double>() < log["history"]["epochs"][0]["val_loss"].get<double>() - 0.5);
  CHECK(log["sample"].get<std::string>().rfind("ab", 0) == 0);
  CHECK(read(out + "/loss.svg").find("<svg") == 0);
  CHECK(read(out + "/vocab.json").find("tapegrad-char-vocab") != std::string::npos);
  CHECK(read(out + "/model.safetensors").find("h.0.attn.in_proj_weight") != std::string::npos);

  // Resuming at iteration 40 and going on to 60 continues the logged history.
  Result resumed = run_example("char_gpt", "--text '" + text + "' --out '" + out + "' --resume '" + out +
                                               "/run_state.safetensors' --iters 60 --eval-every 20 --warmup 5 "
                                               "--lr 1e-2 --sample 0" + kTinyGpt, dir);
  INFO(resumed.output);
  REQUIRE(resumed.code == 0);
  CHECK(resumed.output.find("resumed from") != std::string::npos);
  CHECK(resumed.output.find("iter    60: train loss ") != std::string::npos);
  CHECK(resumed.output.find("iter    20:") == std::string::npos);
  CHECK(nlohmann::json::parse(read(out + "/log.json"))["history"]["epochs"].size() == 4);

  // Another corpus has another vocabulary: resuming from these weights is refused.
  const std::string other = write_text(dir, "other.txt", "xyz\n", 200);
  Result mismatch = run_example("char_gpt", "--text '" + other + "' --out '" + dir.file("out2") + "' --resume '" + out +
                                                "/run_state.safetensors' --iters 60" + kTinyGpt, dir);
  CHECK(mismatch.code == 1);
  CHECK(mismatch.output.find("vocabulary mismatch on load") != std::string::npos);
}

TEST_CASE("char_gpt: a context longer than the text is a clear error") {
  TempDir dir("example_gpt_short");
  const std::string text = write_text(dir, "short.txt", "tiny text\n", 1);
  Result r = run_example("char_gpt", "--text '" + text + "' --out '" + dir.file("out") + "' --iters 5" + kTinyGpt, dir);
  INFO(r.output);
  CHECK(r.code == 1);
  CHECK(r.output.find("char_gpt: error:") != std::string::npos);
  CHECK(r.output.find("16") != std::string::npos);  // names the block size
}
