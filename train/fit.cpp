#include "train/fit.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "autograd/debug.hpp"
#include "autograd/functions.hpp"
#include "autograd/node.hpp"
#include "autograd/random.hpp"
#include "nn/nn.hpp"
#include "optim/optimizer.hpp"
#include "train/run_state.hpp"

namespace tapegrad::train {
namespace {

using nn::Module;
using nn::NamedTensors;
using nn::UnaryModule;

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

bool maximizes(Mode mode, const std::string& monitor) {
  if (mode != Mode::automatic) return mode == Mode::max;
  for (const char* key : {"acc", "precision", "recall", "f1"})
    if (monitor.find(key) != std::string::npos) return true;
  return false;
}

// Keys in display order: loss, accuracy, other training values, then the same for val_*.
std::vector<std::string> ordered_keys(const std::map<std::string, double>& values) {
  auto rank = [](const std::string& k) {
    bool val = k.rfind("val_", 0) == 0;
    std::string base = val ? k.substr(4) : k;
    return 10 * int(val) + (base == "loss" ? 0 : base == "accuracy" ? 1 : 2);
  };
  std::vector<std::string> keys;
  for (const auto& [k, v] : values) keys.push_back(k);
  std::stable_sort(keys.begin(), keys.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return keys;
}

// Restores a module's training mode when it goes out of scope.
struct ModeRestorer {
  Module& model;
  bool was_training;
  ~ModeRestorer() { model.train(was_training); }
};

// One-line terminal progress bar, redrawn in place at most ten times a second.
class ProgressBar {
 public:
  ProgressBar(bool enabled, int64_t batches) : enabled_(enabled), batches_(batches), start_(Clock::now()) {}
  void update(int64_t done, int64_t samples, double running_loss) {
    if (!enabled_) return;
    double elapsed = seconds_since(start_);
    if (done < batches_ && elapsed - last_ < 0.1) return;
    last_ = elapsed;
    const int width = 24;
    int filled = static_cast<int>(width * done / std::max<int64_t>(batches_, 1));
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < width) bar += '>' + std::string(static_cast<size_t>(width - filled - 1), '.');
    double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(batches_ - done) : 0.0;
    std::printf("\r\033[K%*lld/%lld [%s] loss %.4f  %.0f samples/s  ETA %.0fs", int(std::to_string(batches_).size()),
                static_cast<long long>(done), static_cast<long long>(batches_), bar.c_str(), running_loss,
                elapsed > 0 ? static_cast<double>(samples) / elapsed : 0.0, eta);
    std::fflush(stdout);
  }
  void clear() {
    if (!enabled_) return;
    std::printf("\r\033[K");
    std::fflush(stdout);
  }

 private:
  bool enabled_;
  int64_t batches_;
  Clock::time_point start_;
  double last_ = -1.0;
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

}  // namespace

double EpochLog::get(const std::string& key) const {
  auto it = values.find(key);
  if (it != values.end()) return it->second;
  std::string keys;
  for (const auto& [k, v] : values) keys += (keys.empty() ? "" : ", ") + k;
  throw std::invalid_argument("epoch " + std::to_string(epoch) + " has no value '" + key + "' (it has: " + keys + ")");
}

std::vector<double> History::series(const std::string& key) const {
  std::vector<double> out;
  for (const auto& e : epochs) out.push_back(e.has(key) ? e.values.at(key) : std::nan(""));
  return out;
}

std::string History::to_json(int indent) const {
  nlohmann::json j;
  j["epochs"] = nlohmann::json::array();
  for (const auto& e : epochs) {
    nlohmann::json row = {{"epoch", e.epoch}, {"seconds", e.seconds}, {"steps", e.steps}};
    for (const auto& [k, v] : e.values) row[k] = v;
    j["epochs"].push_back(row);
  }
  j["steps"] = steps;
  j["stop_reason"] = stop_reason;
  j["notes"] = notes;
  return j.dump(indent);
}

// ---- callbacks -------------------------------------------------------------------------------

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  if (options_.patience < 0)
    throw std::invalid_argument("EarlyStopping: patience must be >= 0, got " + std::to_string(options_.patience));
  if (!(options_.min_delta >= 0))
    throw std::invalid_argument("EarlyStopping: min_delta must be >= 0, got " + std::to_string(options_.min_delta));
  maximize_ = maximizes(options_.mode, options_.monitor);
}

void EarlyStopping::on_train_begin(TrainState&) {
  best_ = maximize_ ? -INFINITY : INFINITY;
  best_epoch_ = wait_ = 0;
  best_state_.clear();
}

void EarlyStopping::on_epoch_end(TrainState& s, const EpochLog& log) {
  const double v = log.get(options_.monitor);
  const bool improved = maximize_ ? v > best_ + options_.min_delta : v < best_ - options_.min_delta;
  if (improved) {
    best_ = v;
    best_epoch_ = log.epoch;
    wait_ = 0;
    if (options_.restore_best) {
      NoGradGuard no_grad;
      best_state_.clear();
      for (const auto& [name, t] : s.model.state_dict()) best_state_.emplace_back(name, t.detach().clone());
    }
    return;
  }
  if (++wait_ >= std::max<int64_t>(options_.patience, 1)) {
    std::ostringstream why;
    why << "early stopping: " << options_.monitor << " did not improve for " << wait_ << " epoch"
        << (wait_ == 1 ? "" : "s") << " (best " << best_ << " at epoch " << best_epoch_ << ")";
    s.request_stop(why.str());
  }
}

void EarlyStopping::on_train_end(TrainState& s) {
  if (!options_.restore_best || best_state_.empty()) return;
  s.model.load_state_dict(best_state_);
  std::ostringstream line;
  line << "EarlyStopping: restored the weights of epoch " << best_epoch_ << " (best " << options_.monitor << " "
       << best_ << ")";
  s.note(line.str());
}

namespace {
/// Throws when `state` has a key that is not in `keys` and does not start with `prefix`.
void only_keys(const NamedTensors& state, const char* who, std::initializer_list<const char*> keys,
               const char* prefix = nullptr) {
  for (const auto& [name, t] : state) {
    bool known = prefix && name.rfind(prefix, 0) == 0;
    for (const char* k : keys) known = known || name == k;
    if (!known) throw std::invalid_argument(std::string(who) + "::load_state_dict: unknown state '" + name + "'");
  }
}
Tensor f64(double v) { return scalar(v, DType::f64); }
/// The state of a callback whose only state is one optional value (ConvergenceStop, ModelCheckpoint).
NamedTensors optional_state(const char* key, const std::optional<double>& v) {
  return v ? NamedTensors{{key, f64(*v)}} : NamedTensors{};
}
std::optional<double> load_optional(const NamedTensors& state, const char* who, const char* key) {
  only_keys(state, who, {key});
  return optim::optional_state_entry(state, who, key);
}
}  // namespace

NamedTensors EarlyStopping::state_dict() const {
  NamedTensors out{{"best", f64(best_)}, {"best_epoch", f64(static_cast<double>(best_epoch_))},
                   {"wait", f64(static_cast<double>(wait_))}};
  for (const auto& [name, t] : best_state_) out.emplace_back("weights." + name, t);
  return out;
}

void EarlyStopping::load_state_dict(const NamedTensors& state) {
  only_keys(state, "EarlyStopping", {"best", "best_epoch", "wait"}, "weights.");
  const double best = optim::state_entry(state, "EarlyStopping", "best", 1)[0];
  const int64_t best_epoch = optim::state_count(state, "EarlyStopping", "best_epoch");
  const int64_t wait = optim::state_count(state, "EarlyStopping", "wait");
  NamedTensors weights;
  for (const auto& [name, t] : state)
    if (name.rfind("weights.", 0) == 0) weights.emplace_back(name.substr(8), t.clone());
  if (options_.restore_best && best_epoch > 0 && weights.empty())
    throw std::invalid_argument("EarlyStopping::load_state_dict: restore_best is on but the state holds no weights");
  best_ = best;
  best_epoch_ = best_epoch;
  wait_ = wait;
  best_state_ = std::move(weights);
}

ConvergenceStop::ConvergenceStop(double tolerance, std::string monitor)
    : tolerance_(tolerance), monitor_(std::move(monitor)) {
  if (!(tolerance > 0))
    throw std::invalid_argument("ConvergenceStop: tolerance must be positive, got " + std::to_string(tolerance));
}

void ConvergenceStop::on_epoch_end(TrainState& s, const EpochLog& log) {
  const double v = log.get(monitor_);
  if (previous_ && std::abs(v - *previous_) < tolerance_) {
    std::ostringstream why;
    why << "converged: " << monitor_ << " changed by " << std::abs(v - *previous_) << " < " << tolerance_;
    s.request_stop(why.str());
  }
  previous_ = v;
}

NamedTensors ConvergenceStop::state_dict() const { return optional_state("previous", previous_); }

void ConvergenceStop::load_state_dict(const NamedTensors& state) {
  previous_ = load_optional(state, "ConvergenceStop", "previous");
}

MaxSteps::MaxSteps(int64_t max_steps) : max_steps_(max_steps) {
  if (max_steps <= 0) throw std::invalid_argument("MaxSteps: max_steps must be positive, got " + std::to_string(max_steps));
}

void MaxSteps::on_batch_end(TrainState& s, double) {
  if (s.global_step >= max_steps_) s.request_stop("reached max_steps = " + std::to_string(max_steps_));
}

ModelCheckpoint::ModelCheckpoint(std::string path, std::string monitor, bool save_best_only, Mode mode)
    : path_(std::move(path)), monitor_(std::move(monitor)), save_best_only_(save_best_only),
      maximize_(maximizes(mode, monitor_)) {}

void ModelCheckpoint::on_epoch_end(TrainState& s, const EpochLog& log) {
  if (save_best_only_) {
    const double v = log.get(monitor_);
    if (best_ && !(maximize_ ? v > *best_ : v < *best_)) return;
    best_ = v;
  }
  std::string path = path_;
  if (auto pos = path.find("{epoch}"); pos != std::string::npos) path.replace(pos, 7, std::to_string(log.epoch));
  nn::save(s.model, path);
  saved_.push_back(path);
}

NamedTensors ModelCheckpoint::state_dict() const { return optional_state("best", best_); }

void ModelCheckpoint::load_state_dict(const NamedTensors& state) { best_ = load_optional(state, "ModelCheckpoint", "best"); }

LearningRateScheduler::LearningRateScheduler(std::shared_ptr<optim::LRScheduler> scheduler)
    : scheduler_(std::move(scheduler)) {
  if (!scheduler_) throw std::invalid_argument("LearningRateScheduler: null scheduler");
}

LearningRateScheduler::LearningRateScheduler(std::shared_ptr<optim::ReduceLROnPlateau> plateau, std::string monitor)
    : plateau_(std::move(plateau)), monitor_(std::move(monitor)) {
  if (!plateau_) throw std::invalid_argument("LearningRateScheduler: null ReduceLROnPlateau");
}

void LearningRateScheduler::on_epoch_end(TrainState&, const EpochLog& log) {
  if (scheduler_) scheduler_->step();
  else plateau_->step(log.get(monitor_));
}

NamedTensors LearningRateScheduler::state_dict() const {
  return scheduler_ ? scheduler_->state_dict() : plateau_->state_dict();
}

void LearningRateScheduler::load_state_dict(const NamedTensors& state) {
  if (scheduler_) scheduler_->load_state_dict(state);
  else plateau_->load_state_dict(state);
}

// ---- fit / evaluate / predict -----------------------------------------------------------------

namespace {
/// Every callback's state for a run state: a marker "<i>.<name>" per callback (so a resume can
/// check that the run has the same callbacks in the same order) and "<i>.<name>.<key>" per entry.
NamedTensors callback_states(const std::vector<std::shared_ptr<Callback>>& callbacks) {
  NamedTensors out;
  for (size_t i = 0; i < callbacks.size(); ++i) {
    const std::string prefix = std::to_string(i) + "." + callbacks[i]->name();
    out.emplace_back(prefix, f64(static_cast<double>(i)));
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
  std::shared_ptr<const datasets::Dataset> train = data, val = options.validation_data;
  if (!val && options.validation_split != 0.0) {
    auto [a, b] = datasets::random_split(data, options.validation_split, options.seed ^ 0x9e3779b97f4a7c15ull);
    train = a;
    val = b;
  }
  if (train->size() == 0) throw std::invalid_argument("fit: no training samples");
  datasets::DataLoader loader(train, {.batch_size = options.batch_size, .shuffle = options.shuffle,
                                      .seed = options.seed});
  std::ostream& out = options.out ? *options.out : std::cout;
  const bool bar = !options.quiet && &out == &std::cout && isatty(STDOUT_FILENO);

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
    callback_parts = load_resume_state(*ck, model, optimizer, generators, options.callbacks);
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
    model.train();
    const auto t0 = Clock::now();
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
      const double lv = l.item();
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
    log.values["loss"] = loss_sum / static_cast<double>(std::max<int64_t>(seen, 1));
    if (classify) log.values["accuracy"] = static_cast<double>(correct) / static_cast<double>(predictions);
    if (val && val->size() > 0) {
      Evaluation ev = evaluate(model, loss, *val, std::max<int64_t>(options.batch_size, 256));
      log.values["val_loss"] = ev.loss;
      if (ev.predictions > 0) log.values["val_accuracy"] = ev.accuracy();
      if (ev.perplexity) log.values["val_perplexity"] = *ev.perplexity;
    }
    log.seconds = seconds_since(t0);
    history.epochs.push_back(log);
    if (!options.quiet) {
      out << "Epoch " << epoch << "/" << options.epochs << " - " << std::fixed << std::setprecision(2) << log.seconds
          << "s" << std::setprecision(4);
      for (const auto& k : ordered_keys(log.values)) out << " - " << k << ": " << log.values[k];
      out << std::defaultfloat << std::endl;
    }
    for (auto& cb : options.callbacks) cb->on_epoch_end(state, history.epochs.back());
    // An epoch cut short (a callback stopped it mid-way) is not a resumable point.
    if (!options.state_path.empty() && log.steps == loader.num_batches()) {
      RunState ck{model.state_dict(), optimizer.state_dict(), epoch, state.global_step, {}, history,
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
  if (!options.quiet) {
    if (state.stop) out << state.stop_reason << std::endl;
    for (const auto& line : state.notes) out << line << std::endl;
  }
  return history;
}

Evaluation evaluate(UnaryModule& model, const LossFn& loss, const datasets::Dataset& data, int64_t batch_size) {
  if (batch_size <= 0) throw std::invalid_argument("evaluate: batch_size must be positive, got " + std::to_string(batch_size));
  if (data.size() == 0) throw std::invalid_argument("evaluate: the dataset is empty (no loss or accuracy to report)");
  NotAnOpScope not_an_op;  // inference records nothing: the Profiler must not charge it to the next op
  ModeRestorer restore{model, model.is_training()};
  model.eval();
  NoGradGuard no_grad;
  Evaluation ev;
  double loss_sum = 0, token_ce = 0;
  for (int64_t b = 0; b < data.size(); b += batch_size) {
    datasets::Batch batch = data.range(b, std::min(data.size(), b + batch_size));
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
