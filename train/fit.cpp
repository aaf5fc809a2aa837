#include "train/fit.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <stdexcept>

#include "autograd/debug.hpp"
#include "autograd/functions.hpp"
#include "autograd/node.hpp"
#include "autograd/random.hpp"
#include "datasets/sampler.hpp"
#include "distributed/comm.hpp"
#include "distributed/ddp.hpp"
#include "nn/module.hpp"
#include "optim/optimizer.hpp"
#include "train/progress.hpp"
#include "train/run_state.hpp"

namespace tapegrad::train {
namespace {

using nn::Module;
using nn::NamedTensors;
using nn::UnaryModule;

/// `values` summed element-wise over the ranks of the MPI world (in float64: counts stay exact
/// below 2^53). Every rank must call it with as many values.
std::vector<double> sum_over_ranks(const std::vector<double>& values) {
  Tensor t = tensor(values, DType::f64);
  distributed::all_reduce(t, distributed::ReduceOp::sum);
  return t.to_vector();
}

// Restores a module's training mode when it goes out of scope.
struct ModeRestorer {
  Module& model;
  bool was_training;
  ~ModeRestorer() { model.train(was_training); }
};

/// Whether the batch's predictions can be scored: int64 targets [N] or [N, T, ...] and floating
/// scores of the same shape plus a class axis.
bool is_classification(const Tensor& outputs, const Tensor& targets) {
  if (targets.dtype() != DType::i64 || targets.dim() < 1 || !is_floating(outputs.dtype()) ||
      outputs.dim() != targets.dim() + 1)
    return false;
  for (int64_t d = 0; d < targets.dim(); ++d)
    if (outputs.size(d) != targets.size(d)) return false;
  return true;
}

/// Predictions of a scorable batch equal to their target.
int64_t count_correct(const Tensor& outputs, const Tensor& targets) {
  auto pred = predicted_classes(outputs);
  const int64_t* t = targets.data<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == t[i];
  return correct;
}

// Outputs of `model` on rows [0, n) taken `batch_size` at a time by `rows(begin, end)`.
template <class Rows>
Tensor predict_rows(UnaryModule& model, int64_t n, int64_t batch_size, Rows rows) {
  if (batch_size <= 0) throw std::invalid_argument("predict: batch_size must be positive, got " + std::to_string(batch_size));
  NotAnOpScope not_an_op;  // inference records nothing: the Profiler must not charge it to the next op
  ModeRestorer restore{model, model.is_training()};
  model.eval();
  NoGradGuard no_grad;
  std::vector<Tensor> parts;
  for (int64_t b = 0; b < n; b += batch_size) parts.push_back(model(rows(b, std::min(n, b + batch_size))));
  if (parts.empty()) throw std::invalid_argument("predict: no samples");
  return parts.size() == 1 ? parts[0] : cat(parts, 0);
}

/// Every callback's state for a run state: a marker "<i>.<name>" per callback (so a resume can
/// check that the run has the same callbacks in the same order) and "<i>.<name>.<key>" per entry.
NamedTensors callback_states(const std::vector<std::shared_ptr<Callback>>& callbacks) {
  NamedTensors out;
  for (size_t i = 0; i < callbacks.size(); ++i) {
    const std::string prefix = std::to_string(i) + "." + callbacks[i]->name();
    out.emplace_back(prefix, scalar(static_cast<double>(i), DType::f64));
    for (auto& [key, t] : callbacks[i]->state_dict()) out.emplace_back(prefix + "." + key, t);
  }
  return out;
}

/// A run state's callback states split per callback of the run; throws std::invalid_argument
/// (before anything is loaded) unless the run state records the same callbacks in the same order.
std::vector<NamedTensors> split_callback_states(const std::vector<std::shared_ptr<Callback>>& callbacks,
                                                const NamedTensors& states) {
  std::vector<std::string> recorded;  // "<name>" by index, from the markers
  for (const auto& [key, t] : states)
    if (key.find('.', key.find('.') + 1) == std::string::npos) recorded.push_back(key);
  auto mismatch = [&](const std::string& what) {
    std::string run, ckpt;
    for (auto& cb : callbacks) run += (run.empty() ? "" : ", ") + std::string(cb->name());
    for (auto& r : recorded) ckpt += (ckpt.empty() ? "" : ", ") + r;
    return std::invalid_argument("fit: the resume run state was written with other callbacks (" + what +
                                 "): run state [" + ckpt + "], run [" + run + "]");
  };
  if (recorded.size() != callbacks.size()) throw mismatch("a different number");
  std::vector<NamedTensors> parts(callbacks.size());
  for (size_t i = 0; i < callbacks.size(); ++i) {
    const std::string prefix = std::to_string(i) + "." + callbacks[i]->name();
    bool found = false;
    for (const auto& [key, t] : states) {
      if (key == prefix) found = true;
      else if (key.rfind(prefix + ".", 0) == 0) parts[i].emplace_back(key.substr(prefix.size() + 1), t);
    }
    if (!found) throw mismatch("callback " + std::to_string(i) + " differs");
  }
  return parts;
}
/// Loads a resume run state's model, optimizer, generator and callback states, all or nothing: a
/// run state that does not fit the run (or holds invalid values) throws and leaves all of them as
/// they were. What has a check of its own is checked first (optimizer, generators, the callbacks'
/// layout); the callbacks, which have none, are trial-loaded and rolled back from their own
/// state_dict() (with the learning rates a scheduler set) if they or the model refuse. Returns the
/// callbacks' parts, for loading again after on_train_begin.
std::vector<NamedTensors> load_resume_state(const RunState& ck, Module& model, optim::Optimizer& optimizer,
                                            const std::map<std::string, Generator*>& generators,
                                            const std::vector<std::shared_ptr<Callback>>& callbacks) {
  for (const auto& [name, gen] : generators) {
    if (!ck.rng.count(name)) throw std::invalid_argument("fit: the resume run state has no state of generator '" + name + "'");
    try {
      Generator().set_state(ck.rng.at(name));
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument("fit: the resume run state's state of generator '" + name + "' is malformed");
    }
  }
  std::vector<NamedTensors> parts = split_callback_states(callbacks, ck.callbacks);
  optimizer.check_state_dict(ck.optimizer);

  std::vector<NamedTensors> before;
  std::vector<double> lrs;
  for (auto& cb : callbacks) before.push_back(cb->state_dict());
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) lrs.push_back(optimizer.group_lr(g));
  size_t loaded = 0;
  try {
    for (; loaded < callbacks.size(); ++loaded) callbacks[loaded]->load_state_dict(parts[loaded]);
    model.load_state_dict(ck.model);  // all or nothing by itself
  } catch (...) {
    for (size_t i = 0; i < loaded; ++i) callbacks[i]->load_state_dict(before[i]);
    for (size_t g = 0; g < lrs.size(); ++g) optimizer.set_group_lr(g, lrs[g]);
    throw;
  }
  // Checked above: these cannot fail.
  optimizer.load_state_dict(ck.optimizer);
  for (const auto& [name, gen] : generators) gen->set_state(ck.rng.at(name));
  return parts;
}
}  // namespace

History fit(UnaryModule& model, optim::Optimizer& optimizer, const LossFn& loss,
            std::shared_ptr<const datasets::Dataset> data, const FitOptions& options) {
  if (!data) throw std::invalid_argument("fit: null dataset");
  if (options.epochs < 0) throw std::invalid_argument("fit: epochs must be >= 0, got " + std::to_string(options.epochs));
  if (!(options.validation_split >= 0.0 && options.validation_split < 1.0))
    throw std::invalid_argument("fit: validation_split must be in [0, 1), got " + std::to_string(options.validation_split));
  if (options.batch_size <= 0)
    throw std::invalid_argument("fit: batch_size must be positive, got " + std::to_string(options.batch_size));
  std::shared_ptr<const datasets::Dataset> train_data = data, val = options.validation_data;
  if (!val && options.validation_split != 0.0) {
    auto [a, b] = datasets::random_split(data, options.validation_split, options.seed ^ 0x9e3779b97f4a7c15ull);
    train_data = a;
    val = b;
  }
  if (train_data->size() == 0) throw std::invalid_argument("fit: no training samples");
  // Data-parallel over the MPI world (FitOptions::distributed): a shard per rank, rank 0 speaks.
  const bool is_ddp = dynamic_cast<distributed::DistributedDataParallel*>(&model) != nullptr;
  const int world = options.distributed ? distributed::world_size() : 1;
  const int rank = distributed::rank();
  if (world > 1 && !is_ddp)
    throw std::invalid_argument(
        "fit: this process is rank " + std::to_string(rank) + " of an MPI world of " + std::to_string(world) +
        ", but the model is not a distributed::DistributedDataParallel: its gradients would not be averaged and "
        "the ranks would train different models. Wrap it (std::make_shared<distributed::DistributedDataParallel>"
        "(model)), or set FitOptions::distributed = false to train independent replicas");
  if (!options.distributed && is_ddp && distributed::world_size() > 1)
    throw std::invalid_argument("fit: FitOptions::distributed = false with a DistributedDataParallel model, which "
                                "averages gradients over the ranks: unwrap the model to train independent replicas");
  std::shared_ptr<datasets::DistributedSampler> sampler;
  if (world > 1)
    sampler = std::make_shared<datasets::DistributedSampler>(train_data->size(), rank, world, options.seed,
                                                             options.shuffle);
  datasets::DataLoader loader(train_data, {.batch_size = options.batch_size, .shuffle = options.shuffle && !sampler,
                                           .seed = options.seed, .sampler = sampler});
  const bool lead = world == 1 || rank == 0;  // prints and writes run states
  const bool quiet = options.quiet || !lead;
  nn::UnaryModule& saved = distributed::unwrap(model);  // what run states hold
  std::ostream& out = options.out ? *options.out : std::cout;
  const bool bar = !quiet && &out == &std::cout && isatty(STDOUT_FILENO);

  History history;
  TrainState state{model, optimizer};
  // The generators a run state records: the default one, the loader's shuffling, the caller's.
  std::map<std::string, Generator*> generators = options.generators;
  for (const char* reserved : {"default", "loader"})
    if (generators.count(reserved))
      throw std::invalid_argument(std::string("fit: generator name '") + reserved + "' is reserved");
  generators["default"] = &default_generator();
  generators["loader"] = &loader.generator();
  int64_t first_epoch = 1;
  std::vector<NamedTensors> callback_parts;
  if (const RunState* ck = options.resume.get()) {
    if (ck->epoch > options.epochs)
      throw std::invalid_argument("fit: the resume run state is at epoch " + std::to_string(ck->epoch) +
                                  ", past epochs = " + std::to_string(options.epochs));
    callback_parts = load_resume_state(*ck, saved, optimizer, generators, options.callbacks);
    history.epochs = ck->history.epochs;
    state.global_step = ck->global_step;
    first_epoch = ck->epoch + 1;
  }
  for (auto& cb : options.callbacks) cb->on_train_begin(state);
  if (const RunState* ck = options.resume.get()) {
    for (size_t i = 0; i < options.callbacks.size(); ++i) options.callbacks[i]->load_state_dict(callback_parts[i]);
    // A run that a callback stopped at the run state's epoch stays stopped: only on_train_end runs.
    if (!ck->history.stop_reason.empty() && ck->history.stop_reason != "completed")
      state.request_stop(ck->history.stop_reason);
  }
  for (int64_t epoch = first_epoch; epoch <= options.epochs && !state.stop; ++epoch) {
    state.epoch = epoch;
    if (sampler) sampler->set_epoch(epoch - 1);
    model.train();
    const auto t0 = std::chrono::steady_clock::now();
    EpochLog log;
    log.epoch = epoch;
    double loss_sum = 0;
    int64_t seen = 0, correct = 0, predictions = 0, done = 0;
    bool classify = false;
    ProgressBar progress(bar, loader.num_batches());
    for (auto it = loader.begin(); it != loader.end(); ++it) {
      datasets::Batch batch = *it;
      optimizer.zero_grad();
      Tensor outputs = model(batch.x);
      Tensor l = loss(outputs, batch.y);
      l.backward();
      optimizer.step();
      // For callbacks, the ranks' mean, so that every rank's callbacks see the same value and decide
      // alike; without callbacks no collective per step (the epoch's sums are reduced below, and the
      // progress bar shows rank 0's own running loss).
      const bool global_loss = world > 1 && !options.callbacks.empty();
      const double lv = global_loss ? distributed::all_reduce_value(l.item(), distributed::ReduceOp::mean) : l.item();
      const int64_t n = batch.size();
      loss_sum += lv * static_cast<double>(n);
      seen += n;
      if (is_classification(outputs, batch.y)) {
        classify = true;
        correct += count_correct(outputs, batch.y);
        predictions += batch.y.numel();
      }
      ++state.global_step;
      ++log.steps;
      progress.update(++done, seen, loss_sum / static_cast<double>(seen));
      for (auto& cb : options.callbacks) cb->on_batch_end(state, lv);
      if (state.stop) break;
    }
    progress.clear();
    if (world > 1) {  // the epoch's sums over all ranks (each rank's own batch losses, weighted)
      const std::vector<double> v = sum_over_ranks({loss_sum, static_cast<double>(seen), static_cast<double>(correct),
                                                    static_cast<double>(predictions)});
      loss_sum = v[0];
      seen = static_cast<int64_t>(v[1]);
      correct = static_cast<int64_t>(v[2]);
      predictions = static_cast<int64_t>(v[3]);
    }
    log.values["loss"] = loss_sum / static_cast<double>(std::max<int64_t>(seen, 1));
    if (classify) log.values["accuracy"] = static_cast<double>(correct) / static_cast<double>(predictions);
    if (val && val->size() > 0) {
      Evaluation ev = evaluate(model, loss, *val, std::max<int64_t>(options.batch_size, 256), world > 1);
      log.values["val_loss"] = ev.loss;
      if (ev.predictions > 0) log.values["val_accuracy"] = ev.accuracy();
      if (ev.perplexity) log.values["val_perplexity"] = *ev.perplexity;
    }
    log.seconds = seconds_since(t0);
    history.epochs.push_back(log);
    if (!quiet) print_epoch_line(out, log, options.epochs);
    for (auto& cb : options.callbacks) cb->on_epoch_end(state, history.epochs.back());
    // An epoch cut short (a callback stopped it mid-way) is not a resumable point.
    if (lead && !options.state_path.empty() && log.steps == loader.num_batches()) {
      RunState ck{saved.state_dict(), optimizer.state_dict(), epoch, state.global_step, {}, history,
                    callback_states(options.callbacks)};
      ck.history.steps = state.global_step;
      ck.history.stop_reason = state.stop ? state.stop_reason : "";
      for (const auto& [name, gen] : generators) ck.rng[name] = gen->state();
      save_run_state(ck, options.state_path);
    }
  }
  for (auto& cb : options.callbacks) cb->on_train_end(state);
  history.steps = state.global_step;
  history.stop_reason = state.stop ? state.stop_reason : "completed";
  history.notes = state.notes;
  if (!quiet) {
    if (state.stop) out << state.stop_reason << std::endl;
    for (const auto& line : state.notes) out << line << std::endl;
  }
  return history;
}

Evaluation evaluate(UnaryModule& model, const LossFn& loss, const datasets::Dataset& data, int64_t batch_size,
                    bool across_ranks) {
  if (batch_size <= 0) throw std::invalid_argument("evaluate: batch_size must be positive, got " + std::to_string(batch_size));
  if (data.size() == 0) throw std::invalid_argument("evaluate: the dataset is empty (no loss or accuracy to report)");
  NotAnOpScope not_an_op;  // inference records nothing: the Profiler must not charge it to the next op
  ModeRestorer restore{model, model.is_training()};
  model.eval();
  NoGradGuard no_grad;
  // This rank's part: all of `data`, or the rank-th of `world` contiguous parts.
  const int64_t world = across_ranks ? distributed::world_size() : 1;
  const int64_t rank = world > 1 ? distributed::rank() : 0;
  const int64_t first = data.size() * rank / world, last = data.size() * (rank + 1) / world;
  Evaluation ev;
  double loss_sum = 0, token_ce = 0;
  for (int64_t b = first; b < last; b += batch_size) {
    datasets::Batch batch = data.range(b, std::min(last, b + batch_size));
    Tensor outputs = model(batch.x);
    loss_sum += loss(outputs, batch.y).item() * static_cast<double>(batch.size());
    ev.samples += batch.size();
    if (!is_classification(outputs, batch.y)) continue;
    if (batch.y.dim() == 1) {
      if (!ev.confusion) ev.confusion.emplace(outputs.size(1));
      ev.confusion->update(outputs, batch.y);
    } else {
      token_ce += cross_entropy_sum(outputs, batch.y);
    }
    ev.correct += count_correct(outputs, batch.y);
    ev.predictions += batch.y.numel();
  }
  if (world > 1) {
    // The sums over the ranks. A rank whose part was empty adds zeros, also to the confusion matrix.
    const std::vector<double> v = sum_over_ranks({loss_sum, token_ce, static_cast<double>(ev.samples),
                                                  static_cast<double>(ev.correct), static_cast<double>(ev.predictions)});
    loss_sum = v[0];
    token_ce = v[1];
    ev.samples = static_cast<int64_t>(v[2]);
    ev.correct = static_cast<int64_t>(v[3]);
    ev.predictions = static_cast<int64_t>(v[4]);
    const int64_t classes = ev.confusion ? ev.confusion->num_classes() : 0;
    const auto all_classes =
        static_cast<int64_t>(distributed::all_reduce_value(static_cast<double>(classes), distributed::ReduceOp::max));
    if (classes != 0 && classes != all_classes)
      throw std::runtime_error("evaluate: the ranks' outputs have different class counts (" + std::to_string(classes) +
                               " here, " + std::to_string(all_classes) + " on another rank)");
    if (all_classes > 0) {
      const auto cells = static_cast<size_t>(all_classes * all_classes);
      std::vector<double> counts(cells, 0.0);
      for (int64_t t = 0; t < classes; ++t)
        for (int64_t p = 0; p < classes; ++p)
          counts[static_cast<size_t>(t * classes + p)] = static_cast<double>(ev.confusion->count(t, p));
      counts = sum_over_ranks(counts);
      ev.confusion.emplace(all_classes);
      for (size_t i = 0; i < cells; ++i)
        if (counts[i] != 0)
          ev.confusion->add(static_cast<int64_t>(i) / all_classes, static_cast<int64_t>(i) % all_classes,
                            static_cast<int64_t>(counts[i]));
    }
  }
  ev.loss = loss_sum / static_cast<double>(ev.samples);
  if (ev.predictions > 0 && !ev.confusion) ev.perplexity = std::exp(token_ce / static_cast<double>(ev.predictions));
  return ev;
}

Tensor predict(UnaryModule& model, const datasets::Dataset& data, int64_t batch_size) {
  return predict_rows(model, data.size(), batch_size, [&](int64_t b, int64_t e) { return data.range(b, e).x; });
}

Tensor predict(UnaryModule& model, const Tensor& x, int64_t batch_size) {
  return predict_rows(model, x.size(0), batch_size, [&](int64_t b, int64_t e) { return slice(x, 0, b, e); });
}

}  // namespace tapegrad::train
