#include "train/callbacks.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "autograd/functions.hpp"
#include "distributed/comm.hpp"
#include "distributed/ddp.hpp"
#include "nn/serialize.hpp"
#include "optim/optimizer.hpp"

namespace tapegrad::train {
namespace {

using nn::NamedTensors;

bool maximizes(Mode mode, const std::string& monitor) {
  if (mode != Mode::automatic) return mode == Mode::max;
  for (const char* key : {"acc", "precision", "recall", "f1"})
    if (monitor.find(key) != std::string::npos) return true;
  return false;
}

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
  // In a data-parallel run every rank holds the same weights: rank 0 writes them, without DDP's
  // "module." prefix, so a single process loads them as they are.
  if (distributed::rank() == 0) nn::save(distributed::unwrap(s.model), path);
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
}  // namespace tapegrad::train
