// libtorch side of `make bench-compare`: trains the same models the same way as tapegrad's
// examples (build/examples/mnist_mlp, mnist_cnn) and times the tape on a chain of tiny ops.
//
//   torch_compare mlp  --data DIR --batch-size 32 [--epochs 1] [--seed 0]   seed MLP 784-128-10
//   torch_compare cnn  --data DIR --batch-size 32 [--epochs 1] [--seed 0]   two conv + pool blocks
//   torch_compare tape [--reps 100]                                           tanh(y·1.0001 + 0.0001)
//   torch_compare ops  [--reps 10]                                            per-op forward / backward
//
// Same data (MNIST-format IDX files, raw or .gz, images x/255), same model and initialisation
// (PyTorch defaults, which tapegrad's Linear/Conv2d copy), Adam(lr 1e-3), cross-entropy on logits,
// shuffled batches gathered per step, loss.item() and the running accuracy per step as train::fit does,
// one thread. Prints one JSON object on stdout.
#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" char* openblas_get_corename(void);  // libtorch's BLAS here is OpenBLAS (Debian's libblas.so.3)

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<uint8_t> read_idx(const std::string& dir, const std::string& name, std::vector<int64_t>& dims) {
  std::string path = dir + "/" + name;
  gzFile f = gzopen(path.c_str(), "rb");  // reads raw files too
  if (!f) {
    path += ".gz";
    f = gzopen(path.c_str(), "rb");
  }
  if (!f) throw std::runtime_error("cannot open " + dir + "/" + name + "[.gz]");
  unsigned char magic[4];
  if (gzread(f, magic, 4) != 4 || magic[2] != 0x08) throw std::runtime_error(path + ": not a ubyte IDX file");
  dims.clear();
  int64_t count = 1;
  for (int d = 0; d < magic[3]; ++d) {
    unsigned char b[4];
    if (gzread(f, b, 4) != 4) throw std::runtime_error(path + ": truncated header");
    dims.push_back((int64_t(b[0]) << 24) | (b[1] << 16) | (b[2] << 8) | b[3]);
    count *= dims.back();
  }
  std::vector<uint8_t> data(static_cast<size_t>(count));
  if (gzread(f, data.data(), static_cast<unsigned>(count)) != count) throw std::runtime_error(path + ": truncated");
  gzclose(f);
  return data;
}

struct Split {
  torch::Tensor x, y;  // [N,1,28,28] float32 in [0,1], [N] int64
};

Split load(const std::string& dir, const std::string& prefix) {
  std::vector<int64_t> di, dl;
  auto images = read_idx(dir, prefix + "-images-idx3-ubyte", di);
  auto labels = read_idx(dir, prefix + "-labels-idx1-ubyte", dl);
  Split s;
  s.x = torch::from_blob(images.data(), {di[0], 1, di[1], di[2]}, torch::kUInt8).to(torch::kFloat32).div_(255.f);
  s.y = torch::from_blob(labels.data(), {dl[0]}, torch::kUInt8).to(torch::kInt64);
  return s;
}

struct Mlp : torch::nn::Module {
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  Mlp() {
    fc1 = register_module("fc1", torch::nn::Linear(784, 128));
    fc2 = register_module("fc2", torch::nn::Linear(128, 10));
  }
  torch::Tensor forward(torch::Tensor x) { return fc2(torch::relu(fc1(x.flatten(1)))); }
};

struct Cnn : torch::nn::Module {
  torch::nn::Conv2d c1{nullptr}, c2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  Cnn() {
    c1 = register_module("c1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3).padding(1)));
    c2 = register_module("c2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3).padding(1)));
    fc1 = register_module("fc1", torch::nn::Linear(64 * 7 * 7, 128));
    fc2 = register_module("fc2", torch::nn::Linear(128, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(c1(x)), 2);  // [N,32,14,14]
    x = torch::max_pool2d(torch::relu(c2(x)), 2);  // [N,64,7,7]
    return fc2(torch::relu(fc1(x.flatten(1))));
  }
};

struct Flags {
  std::string mode, data = "/usr/share/datasets/fashion-mnist";
  int64_t batch = 32, epochs = 1, seed = 0, reps = 0;  // reps 0: the mode's default (tape 100, ops 10)
  int threads = 1;  // torch::set_num_threads (intra-op)
};

template <class Model>
void train(const Flags& f) {
  torch::manual_seed(static_cast<uint64_t>(f.seed));
  Split train = load(f.data, "train"), test = load(f.data, "t10k");
  auto model = std::make_shared<Model>();
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-3));
  const int64_t n = train.x.size(0);
  std::vector<double> epoch_seconds;
  double loss_sum = 0, train_acc = 0;
  for (int64_t e = 0; e < f.epochs; ++e) {
    model->train();
    auto t0 = Clock::now();
    torch::Tensor perm = torch::randperm(n, torch::kInt64);
    loss_sum = 0;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i += f.batch) {
      torch::Tensor idx = perm.slice(0, i, std::min(n, i + f.batch));
      torch::Tensor x = train.x.index_select(0, idx), y = train.y.index_select(0, idx);
      opt.zero_grad();
      torch::Tensor out = model->forward(x);
      torch::Tensor loss = torch::nn::functional::cross_entropy(out, y);
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>() * static_cast<double>(x.size(0));
      correct += out.argmax(1).eq(y).sum().item<int64_t>();
    }
    epoch_seconds.push_back(seconds_since(t0));
    train_acc = static_cast<double>(correct) / static_cast<double>(n);
  }
  torch::NoGradGuard no_grad;
  model->eval();
  int64_t correct = 0;
  const int64_t m = test.x.size(0);
  for (int64_t i = 0; i < m; i += 256) {
    auto x = test.x.slice(0, i, std::min(m, i + 256));
    torch::Tensor logits = model->forward(x);
    correct += logits.argmax(1).eq(test.y.slice(0, i, std::min(m, i + 256))).sum().item<int64_t>();
  }
  std::printf("{\"system\": \"libtorch\", \"model\": \"%s\", \"batch_size\": %lld, \"epoch_seconds\": [",
              f.mode.c_str(), static_cast<long long>(f.batch));
  for (size_t i = 0; i < epoch_seconds.size(); ++i) std::printf("%s%.6f", i ? ", " : "", epoch_seconds[i]);
  std::printf("], \"train_loss\": %.6f, \"train_accuracy\": %.6f, \"test_accuracy\": %.6f, \"threads\": %d, "
              "\"blas_core\": \"%s\"}\n",
              loss_sum / static_cast<double>(n), train_acc, static_cast<double>(correct) / static_cast<double>(m),
              torch::get_num_threads(), openblas_get_corename());
}

/// The tape's own cost on the chain tapegrad's bench/bench_tape.cpp times: forward, then backward,
/// per recorded op (3 per link), the graph freed outside both timings. Medians over `reps`.
void tape(const Flags& f) {
  constexpr int kLinks = 1000, kOpsPerLink = 3;
  torch::Tensor x = torch::tensor({0.5f}).requires_grad_();
  auto chain = [&] {
    torch::Tensor y = x;
    for (int i = 0; i < kLinks; ++i) y = torch::tanh(y * 1.0001 + 0.0001);
    return y;
  };
  std::vector<double> fwd, bwd;
  const int64_t reps = f.reps > 0 ? f.reps : 100;
  for (int64_t r = 0; r < reps + 5; ++r) {
    auto t0 = Clock::now();
    torch::Tensor y = chain();
    double tf = seconds_since(t0);
    t0 = Clock::now();
    y.backward();
    double tb = seconds_since(t0);
    y = torch::Tensor();
    x.mutable_grad() = torch::Tensor();
    if (r >= 5) fwd.push_back(tf), bwd.push_back(tb);  // 5 warm-up rounds
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double ops = kLinks * kOpsPerLink;
  std::printf("{\"system\": \"libtorch\", \"forward_per_op\": %.9g, \"backward_per_op\": %.9g}\n", median(fwd) / ops,
              median(bwd) / ops);
}
/// Median over `rounds` of the mean time of `iters` calls, after `iters` warm-up calls.
double timed(int64_t rounds, int iters, const std::function<double()>& once) {
  for (int i = 0; i < iters; ++i) once();
  std::vector<double> means;
  for (int64_t r = 0; r < rounds; ++r) {
    double total = 0;
    for (int i = 0; i < iters; ++i) total += once();
    means.push_back(total / iters);
  }
  std::sort(means.begin(), means.end());
  return means[means.size() / 2];
}

/// One op at the shapes and with the inputs of tapegrad's per-area benchmarks (bench/bench_nn.cpp,
/// bench_elementwise.cpp, bench_softmax.cpp; the driver pairs them by `key`): forward recorded on
/// the tape (inputs that require grad), backward alone (the graph built and freed outside the timing).
struct OpCase {
  const char* key;
  std::function<torch::Tensor()> forward;
  torch::Tensor grad;                 // undefined: a scalar output, backward() with 1
  std::vector<torch::Tensor> leaves;  // grads cleared after each backward
};

void ops(const Flags& f) {
  torch::manual_seed(0);
  auto randn = [](std::vector<int64_t> shape, bool grad = false) {
    return torch::randn(shape).requires_grad_(grad);
  };
  auto labels = [](int64_t n, int64_t c) { return torch::arange(n, torch::kLong).remainder(c); };
  std::vector<OpCase> cases;
  for (int64_t b : {32, 256}) {  // the seed MLP's first layer; the input is data
    auto w = randn({128, 784}, true), bias = randn({128}, true), x = randn({b, 784});
    cases.push_back({b == 32 ? "linear/32" : "linear/256", [=] { return torch::linear(x, w, bias); }, randn({b, 128}), {w, bias}});
  }
  for (int which : {0, 1}) {  // the small CNN's two convolutions, batch 32
    const int64_t cin = which == 0 ? 1 : 32, cout = which == 0 ? 32 : 64, hw = which == 0 ? 28 : 14;
    auto w = randn({cout, cin, 3, 3}, true), bias = randn({cout}, true), x = randn({32, cin, hw, hw}, which == 1);
    std::vector<torch::Tensor> leaves{w, bias};
    if (which == 1) leaves.push_back(x);
    cases.push_back({which == 0 ? "conv2d/0" : "conv2d/1", [=] { return torch::conv2d(x, w, bias, 1, 1); },
                     randn({32, cout, hw, hw}), leaves});
  }
  {
    auto x = randn({32, 32, 28, 28}, true);
    cases.push_back({"max_pool2d", [=] { return torch::max_pool2d(x, 2); }, randn({32, 32, 14, 14}), {x}});
  }
  for (int which : {0, 4}) {  // relu at the MLP's hidden layer and the CNN's first activation
    std::vector<int64_t> shape = which == 0 ? std::vector<int64_t>{32, 128} : std::vector<int64_t>{32, 32, 28, 28};
    auto x = randn(shape, true);
    cases.push_back({which == 0 ? "relu/0" : "relu/4", [=] { return torch::relu(x); }, randn(shape), {x}});
  }
  {
    auto x = randn({256, 1000}, true);
    cases.push_back({"softmax/2", [=] { return torch::softmax(x, 1); }, randn({256, 1000}), {x}});
  }
  for (int which : {0, 1}) {  // cross-entropy from logits [32,10] and [256,10], mean reduction
    const int64_t n = which == 0 ? 32 : 256;
    auto x = randn({n, 10}, true);
    auto t = labels(n, 10);
    cases.push_back({which == 0 ? "cross_entropy/0" : "cross_entropy/1",
                     [=] { return torch::nn::functional::cross_entropy(x, t); }, torch::Tensor(), {x}});
  }
  const int64_t rounds = f.reps > 0 ? f.reps : 10;
  std::printf("{\"system\": \"libtorch\", \"ops\": {");
  for (size_t i = 0; i < cases.size(); ++i) {
    OpCase& c = cases[i];
    const int iters = 20;
    const double fwd = timed(rounds, iters, [&] {  // like tapegrad's time_forward: the result and its graph freed too
      auto t0 = Clock::now();
      { torch::Tensor y = c.forward(); }
      return seconds_since(t0);
    });
    const double bwd = timed(rounds, iters, [&] {
      torch::Tensor y = c.forward();
      auto t0 = Clock::now();
      if (c.grad.defined()) y.backward(c.grad);
      else y.backward();
      const double s = seconds_since(t0);
      for (auto& l : c.leaves) l.mutable_grad() = torch::Tensor();
      return s;
    });
    std::printf("%s\"%s\": {\"forward\": %.9g, \"backward\": %.9g}", i ? ", " : "", c.key, fwd, bwd);
  }
  std::printf("}}\n");
}
}  // namespace

int main(int argc, char** argv) {
  try {
    Flags f;
    if (argc < 2) throw std::invalid_argument("usage: torch_compare mlp|cnn|tape|ops [--data DIR] [--batch-size B] [--threads N] ...");
    f.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if (i + 1 >= argc) throw std::invalid_argument("flag " + a + " needs a value");
      std::string v = argv[++i];
      if (a == "--data") f.data = v;
      else if (a == "--batch-size") f.batch = std::stoll(v);
      else if (a == "--epochs") f.epochs = std::stoll(v);
      else if (a == "--seed") f.seed = std::stoll(v);
      else if (a == "--reps") f.reps = std::stoll(v);
      else if (a == "--threads") f.threads = std::stoi(v);
      else throw std::invalid_argument("unknown flag " + a);
    }
    if (f.threads < 1) throw std::invalid_argument("--threads needs at least 1, got " + std::to_string(f.threads));
    torch::set_num_threads(f.threads);
    if (f.mode == "mlp") train<Mlp>(f);
    else if (f.mode == "cnn") train<Cnn>(f);
    else if (f.mode == "tape") tape(f);
    else if (f.mode == "ops") ops(f);
    else throw std::invalid_argument("unknown mode " + f.mode + " (mlp, cnn, tape, ops)");
  } catch (const std::exception& e) {
    std::cerr << "torch_compare: error: " << e.what() << std::endl;
    return 1;
  }
}
