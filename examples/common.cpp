#include "examples/common.hpp"

#include "autograd/debug.hpp"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "autograd/parallel.hpp"
#include "autograd/random.hpp"
#include "distributed/ddp.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"
#include "train/run_state.hpp"

namespace tapegrad::examples {
namespace fs = std::filesystem;

namespace {
void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f.flush()) throw std::runtime_error("cannot write '" + path + "'");
}

// CLI11's PositiveNumber prints the whole range of double in its message; this says it plainly.
const CLI::Validator kPositive(
    [](std::string& s) -> std::string {
      try {
        size_t used = 0;
        if (std::stod(s, &used) > 0 && used == s.size()) return "";
      } catch (const std::exception&) {
      }
      return "must be a positive number, got '" + s + "'";
    },
    "> 0");
}  // namespace

Args parse_args(int argc, char** argv, const std::string& description, Args defaults) {
  Args a = std::move(defaults);
  a.threads = get_num_threads();  // TAPEGRAD_NUM_THREADS, else 1
  a.program = fs::path(argv[0]).filename().string();
  CLI::App app(description, a.program);
  app.option_defaults()->always_capture_default();
  app.add_option("--dataset", a.dataset, "mnist (MNIST digits) or fashion-mnist (Zalando's Fashion-MNIST)")
      ->check(CLI::IsMember({"mnist", "fashion-mnist"}));
  app.add_option("--data", a.data,
                 "Directory of MNIST-format IDX files (train/t10k images/labels, raw or .gz); default "
                 "data/mnist for mnist, /usr/share/datasets/fashion-mnist for fashion-mnist");
  app.add_option("--epochs", a.epochs, "Passes over the training data")->check(kPositive);
  app.add_option("--batch-size", a.batch_size, "Samples per optimizer step")->check(kPositive);
  app.add_option("--lr", a.lr, "Learning rate")->check(kPositive);
  app.add_option("--optimizer", a.optimizer, "adam, adamw, sgd, rmsprop or adagrad")
      ->check(CLI::IsMember({"adam", "adamw", "sgd", "rmsprop", "adagrad"}));
  app.add_option("--threads", a.threads,
                 "Intra-op threads for tapegrad's kernels and OpenBLAS (default: TAPEGRAD_NUM_THREADS, else 1)")
      ->check(CLI::Range(1, 256));
  app.add_option("--seed", a.seed, "Seed of weight initialisation, shuffling and the validation split");
  app.add_option("--validation-split", a.validation_split,
                 "Fraction of the training data held out (at random) for validation, in [0, 1)")
      ->check(CLI::Range(0.0, 0.99));
  app.add_option("--patience", a.patience,
                 "Stop after this many epochs without val_loss improvement and restore the best weights "
                 "(0: off; needs --validation-split)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--out", a.out, "Output directory for weights, metrics JSON and curves (default out/<program>)");
  app.add_option("--state", a.state,
                 "The run's state (model, optimizer, RNG states, history) written atomically after every epoch "
                 "(default <out>/run_state.safetensors; none: not written)");
  app.add_option("--resume", a.resume,
                 "Continue the run whose --state file this is up to --epochs (same flags as the first run)");
  app.add_flag("--quiet,-q", a.quiet, "No progress bar and no per-epoch lines");
  app.add_flag("--profile", a.profile,
               "Profile the tape: per op type and per module count, forward/backward time, bytes allocated and "
               "saved, peak memory (printed, and written to <out>/profile.json) and the timeline "
               "(<out>/trace.json, for chrome://tracing or ui.perfetto.dev)");
  app.add_option("--profile-depth", a.profile_depth, "Levels of the by-module profile table (-1: all)")
      ->check(CLI::Range(-1, 100));
  try {
    app.parse(argc, argv);
    if (a.patience > 0 && a.validation_split == 0.0)
      throw CLI::ValidationError("--patience", "early stopping monitors val_loss: give --validation-split too");
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    std::exit(code == 0 ? 0 : 2);
  }
  if (a.data.empty()) a.data = a.dataset == "mnist" ? "data/mnist" : datasets::kFashionMnistDir;
  if (a.out.empty()) a.out = "out/" + a.program;
  if (a.state.empty()) a.state = (fs::path(a.out) / "run_state.safetensors").string();
  set_num_threads(a.threads);
  manual_seed(a.seed);
  // After the flags, so --help and a bad flag exit before MPI starts.
  a.session = std::make_shared<distributed::Session>(&argc, &argv);
  if (distributed::rank() != 0) a.quiet = true;  // one log: rank 0's
  return a;
}

int run(const Args& args, const std::function<void()>& body) {
  try {
    std::optional<Profiler> profiler;
    if (args.profile) profiler.emplace();
    body();
    if (profiler && distributed::rank() == 0) {
      profiler->stop();
      std::cout << "\nProfile of the run (per op type, composites with their parts; times in µs):\n"
                << profiler->table(GroupBy::op) << "\nThe same grouped by module (paths as in named_parameters):\n"
                << profiler->table(GroupBy::scope, args.profile_depth);
      fs::create_directories(args.out);
      profiler->write_json(args.out + "/profile.json");
      profiler->write_chrome_trace(args.out + "/trace.json");
      std::cout << "Wrote " << args.out << "/profile.json and " << args.out
                << "/trace.json (open in chrome://tracing or ui.perfetto.dev)\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << args.program << ": error: " << e.what() << std::endl;
    if (distributed::world_size() > 1) {
      std::cerr << args.program << ": rank " << distributed::rank() << " failed: ending every rank" << std::endl;
      distributed::abort(1);
    }
    return 1;
  }
}

std::pair<std::shared_ptr<datasets::ImageDataset>, std::shared_ptr<datasets::ImageDataset>> load_data(
    const Args& args) {
  if (!fs::is_directory(args.data)) {
    std::string hint = args.dataset == "mnist"
                           ? "get the MNIST digits with: bash scripts/fetch_mnist.sh " + args.data +
                                 " (or `make demo`), or pass --data DIR holding the four MNIST IDX files"
                           : "install Fashion-MNIST with: bash scripts/fetch_mnist.sh --fashion-mnist "
                             "(Debian's dataset-fashion-mnist), or pass --data DIR";
    throw datasets::DatasetError("data directory '" + args.data + "' does not exist; " + hint);
  }
  auto train = datasets::load_mnist(args.data, datasets::Split::train);
  auto test = datasets::load_mnist(args.data, datasets::Split::test);
  if (!args.quiet) {
    std::cout << args.program << ": " << args.dataset << " from " << args.data << ": " << train->size()
              << " training and " << test->size() << " test images" << std::endl;
  }
  return {train, test};
}

std::unique_ptr<optim::Optimizer> make_optimizer(const Args& args, const std::vector<Tensor>& params) {
  const std::string& o = args.optimizer;
  if (o == "adam") return std::make_unique<optim::Adam>(params, optim::AdamOptions(args.lr));
  if (o == "adamw") return std::make_unique<optim::AdamW>(params, optim::AdamWOptions(args.lr));
  if (o == "sgd") return std::make_unique<optim::SGD>(params, optim::SGDOptions(args.lr));
  if (o == "rmsprop") return std::make_unique<optim::RMSprop>(params, optim::RMSpropOptions(args.lr));
  if (o == "adagrad") return std::make_unique<optim::Adagrad>(params, optim::AdagradOptions(args.lr));
  throw std::invalid_argument("unknown optimizer '" + o + "' (adam, adamw, sgd, rmsprop, adagrad)");
}

train::FitOptions fit_options(const Args& args) {
  train::FitOptions f;
  f.epochs = args.epochs;
  f.batch_size = args.batch_size;
  f.seed = args.seed;
  f.validation_split = args.validation_split;
  f.quiet = args.quiet;
  if (args.state != "none") {
    fs::create_directories(fs::path(args.state).parent_path().empty() ? fs::path(".")
                                                                       : fs::path(args.state).parent_path());
    f.state_path = args.state;
  }
  if (!args.resume.empty()) {
    f.resume = std::make_shared<train::RunState>(train::load_run_state(args.resume));
    if (!args.quiet)
      std::cout << args.program << ": resuming from " << args.resume << " after epoch " << f.resume->epoch << std::endl;
  }
  if (args.patience > 0) {
    f.callbacks.push_back(std::make_shared<train::EarlyStopping>(
        train::EarlyStoppingOptions{.monitor = "val_loss", .patience = args.patience, .restore_best = true}));
  }
  return f;
}

std::shared_ptr<nn::UnaryModule> data_parallel(std::shared_ptr<nn::UnaryModule> model) {
  if (distributed::world_size() == 1) return model;
  return std::make_shared<distributed::DistributedDataParallel>(std::move(model));
}

Tensor cross_entropy_loss(const Tensor& logits, const Tensor& targets) {
  return nn::functional::cross_entropy(logits, targets);
}

void report(const Args& args, const nn::Module& model, const train::History& history, const train::Evaluation& test) {
  if (!test.confusion) throw std::logic_error("report: the evaluation has no confusion matrix");
  if (distributed::rank() != 0) return;  // every rank holds the same weights and metrics
  const train::ConfusionMatrix& cm = *test.confusion;
  std::vector<std::string> names;
  for (int64_t c = 0; c < cm.num_classes(); ++c)
    names.push_back(args.dataset == "fashion-mnist" && c < 10 ? datasets::kFashionMnistClasses[c] : std::to_string(c));

  std::cout << std::fixed << std::setprecision(4) << "Test loss " << test.loss << " - accuracy " << cm.accuracy()
            << " - macro precision " << cm.macro_precision() << " - recall " << cm.macro_recall() << " - F1 "
            << cm.macro_f1() << std::defaultfloat << " (" << test.samples << " images)\n"
            << "Confusion matrix (rows: true class, columns: predicted class):\n"
            << cm.to_string(names);

  fs::create_directories(args.out);
  const std::string weights = (fs::path(args.out) / "model.safetensors").string();
  nn::save(model, weights);

  nlohmann::json per_class = nlohmann::json::array();
  for (int64_t c = 0; c < cm.num_classes(); ++c) {
    int64_t support = 0;
    for (int64_t p = 0; p < cm.num_classes(); ++p) support += cm.count(c, p);
    per_class.push_back({{"class", c}, {"name", names[static_cast<size_t>(c)]}, {"precision", cm.precision(c)},
                         {"recall", cm.recall(c)}, {"f1", cm.f1(c)}, {"support", support}});
  }
  nlohmann::json j = {
      {"program", args.program},
      {"config", {{"dataset", args.dataset}, {"data", args.data}, {"epochs", args.epochs},
                  {"batch_size", args.batch_size}, {"lr", args.lr}, {"optimizer", args.optimizer},
                  {"threads", args.threads}, {"seed", args.seed}, {"validation_split", args.validation_split},
                  {"patience", args.patience}}},
      {"history", nlohmann::json::parse(history.to_json())},
      {"test", {{"loss", test.loss}, {"accuracy", cm.accuracy()}, {"macro_precision", cm.macro_precision()},
                {"macro_recall", cm.macro_recall()}, {"macro_f1", cm.macro_f1()}, {"samples", test.samples},
                {"per_class", per_class}, {"confusion_matrix", cm.rows()}}}};
  const std::string metrics = (fs::path(args.out) / "metrics.json").string();
  write_file(metrics, j.dump(2) + "\n");
  const std::string svg = (fs::path(args.out) / "curves.svg").string();
  write_file(svg, curves_svg(history, args.program + " on " + args.dataset));
  std::cout << "Wrote " << weights << ", " << metrics << ", " << svg << std::endl;
}

}  // namespace tapegrad::examples
