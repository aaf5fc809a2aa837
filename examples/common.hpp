#pragma once
/// \file common.hpp
/// What the MNIST examples share: command-line flags, data loading with helpful errors, the
/// optimizer by name, and the final report (console, weights, JSON, SVG curves).
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "datasets/datasets.hpp"
#include "distributed/comm.hpp"
#include "nn/module.hpp"
#include "train/fit.hpp"

namespace tapegrad::optim {
class Optimizer;
}

namespace tapegrad::examples {

/// The flags every example takes (see parse_args for their meaning).
struct Args {
  std::string program{};
  std::string dataset = "mnist";  ///< mnist | fashion-mnist
  std::string data{};             ///< MNIST-format directory; empty: the dataset's default
  int64_t epochs = 5;
  int64_t batch_size = 32;
  double lr = 1e-3;
  std::string optimizer = "adam";  ///< adam | adamw | sgd | rmsprop | adagrad
  int threads = 1;                 ///< intra-op threads (kernels and BLAS); parse_args starts from TAPEGRAD_NUM_THREADS
  uint64_t seed = 0;
  double validation_split = 0.0;
  int64_t patience = 0;  ///< 0: no early stopping
  std::string out{};     ///< output directory; empty: out/<program>
  bool quiet = false;
  bool profile = false;  ///< profile of the run: tables by op and by module on stdout, profile.json and trace.json in --out
  int profile_depth = -1;  ///< levels of the by-module table (-1: all)
  std::string state{};   ///< run state written after every epoch; empty: <out>/run_state.safetensors; "none": none
  std::string resume{};  ///< run state to continue from; empty: a fresh run
  /// The MPI world of the run (distributed/comm.hpp): under `mpirun -np N` the examples train one
  /// model data-parallel over N processes, rank 0 printing and writing; alone, a world of one.
  std::shared_ptr<distributed::Session> session{};
};

/// Parses argv with CLI11 starting from `defaults`. Prints help and exits 0 for --help; prints the
/// problem and exits 2 for a bad flag or value (--batch-size 0, --dataset foo, ...). Sets the BLAS
/// thread count and seeds the default generator. Starts the distributed Session (MPI under
/// `mpirun`); on ranks other than 0 the run is quiet.
Args parse_args(int argc, char** argv, const std::string& description, Args defaults);

/// Runs `body`, turning any exception into "<program>: error: <what>" on stderr and exit code 1
/// (in an MPI world of several processes: every rank is ended, MPI_Abort, so none waits forever).
/// With --profile, body runs under a tapegrad::Profiler whose tables (by op, by module down to
/// --profile-depth levels) are printed and saved with the Chrome trace (<out>/trace.json).
int run(const Args& args, const std::function<void()>& body);

/// The train and test splits of the chosen dataset. A missing directory is an error that says how
/// to get the data (scripts/fetch_mnist.sh); corrupt files are DatasetErrors naming the file.
std::pair<std::shared_ptr<datasets::ImageDataset>, std::shared_ptr<datasets::ImageDataset>> load_data(
    const Args& args);

/// The optimizer named by --optimizer with learning rate --lr over `params`.
std::unique_ptr<optim::Optimizer> make_optimizer(const Args& args, const std::vector<Tensor>& params);

/// fit's options from the flags (with EarlyStopping on val_loss, restoring the best weights, when
/// --patience > 0; the run state saved after every epoch; the run state of --resume loaded).
train::FitOptions fit_options(const Args& args);

/// The model to hand to train::fit: under `mpirun -np N` (N > 1) `model` wrapped in a
/// distributed::DistributedDataParallel (rank 0's weights broadcast, gradients averaged over the
/// ranks); alone, `model` itself. --batch-size is per process, so N processes step on N × batch.
std::shared_ptr<nn::UnaryModule> data_parallel(std::shared_ptr<nn::UnaryModule> model);

/// Sparse categorical cross-entropy on logits (softmax folded into the loss).
Tensor cross_entropy_loss(const Tensor& logits, const Tensor& targets);

/// Prints the test metrics and confusion matrix and writes into --out: model.safetensors,
/// metrics.json (flags, history, test metrics per class and macro, confusion matrix) and curves.svg.
/// On rank 0 only, in an MPI world.
void report(const Args& args, const nn::Module& model, const train::History& history, const train::Evaluation& test);

/// What curves_svg draws beside the loss, and the x axis's name (its values are EpochLog::epoch).
struct CurvesOptions {
  std::string second_metric = "accuracy";  ///< a second panel of this key and "val_<key>"; empty: none
  std::string x_label = "epoch";
};
/// One line of a plot: values[i] drawn at x = i + 1 (NaN: no point there).
struct PlotSeries {
  std::string name;            ///< the legend's label
  std::string color;           ///< an SVG color ("#1f77b4")
  std::vector<double> values;  ///< the y values, one per x step
  bool dashed = false;         ///< a dashed line
};
/// One panel of a plot: a title and its lines.
struct PlotPanel {
  std::string title;               ///< above the panel
  std::vector<PlotSeries> series;  ///< the lines, drawn in this order
};
/// Panels side by side in one SVG document (curves_svg's drawing, any number of lines per panel);
/// `x_label` names the x axis of every panel.
std::string panels_svg(const std::string& title, const std::vector<PlotPanel>& panels, const std::string& x_label);

/// The training curves as an SVG document: loss (and options.second_metric) per logged epoch (or
/// evaluation, for the GPT), train and validation.
std::string curves_svg(const train::History& history, const std::string& title, const CurvesOptions& options = {});

}  // namespace tapegrad::examples
