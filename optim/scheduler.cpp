#include "optim/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>

namespace tapegrad::optim {
namespace {
void require(bool ok, const char* who, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string("tapegrad::optim::") + who + ": " + what);
}
/// A rate in a message: %g, so that 1e-300 and 1e300 read as such (std::to_string gives 0.000000
/// and 301 digits).
std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
/// A decay factor: finite and > 0 (0 or less would give rates the optimizer refuses, one epoch later).
void require_gamma(double gamma, const char* who) {
  require(gamma > 0 && std::isfinite(gamma), who, "gamma must be finite and > 0, got " + std::to_string(gamma));
}
}  // namespace

LRScheduler::LRScheduler(Optimizer& optimizer, const char* name) : optimizer_(optimizer), name_(name) {
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) base_lrs_.push_back(optimizer.group_lr(g));
}

LRScheduler::~LRScheduler() = default;

std::vector<double> LRScheduler::checked_rates(const std::vector<double>& base, int64_t e, const char* who) const {
  std::vector<double> rates;
  for (size_t g = 0; g < base.size(); ++g) {
    const double lr = lr_at(base[g], e);
    if (!(base[g] >= 0 && std::isfinite(base[g]) && lr >= 0 && std::isfinite(lr)))
      throw std::invalid_argument(std::string("tapegrad::optim::") + name_ + (*who ? "::" : "") + who + ": group " +
                                  std::to_string(g) + " (base_lrs[" + std::to_string(g) + "] = " + number(base[g]) +
                                  ") gets the learning rate " + number(lr) + " at epoch " + std::to_string(e) +
                                  "; rates must be finite and >= 0");
    rates.push_back(lr);
  }
  return rates;
}

void LRScheduler::set_rates(const std::vector<double>& rates) {
  for (size_t g = 0; g < rates.size(); ++g) optimizer_.set_group_lr(g, rates[g]);
}

void LRScheduler::apply() { set_rates(checked_rates(base_lrs_, epoch_, "")); }  // from the constructors

void LRScheduler::step() {
  // Every rate is checked before the epoch or any group changes.
  std::vector<double> rates = checked_rates(base_lrs_, epoch_ + 1, "step");
  ++epoch_;
  set_rates(rates);
}


NamedTensors LRScheduler::state_dict() const {
  return {{"last_epoch", scalar(static_cast<double>(epoch_), DType::f64)},
          {"base_lrs", tensor(base_lrs_, {static_cast<int64_t>(base_lrs_.size())}, DType::f64)}};
}

void LRScheduler::load_state_dict(const NamedTensors& state) {
  const std::string who = std::string("tapegrad::optim::") + name_;
  const int64_t e = state_count(state, who, "last_epoch");
  std::vector<double> base = state_entry(state, who, "base_lrs", static_cast<int64_t>(base_lrs_.size()));
  // The rates this state gives must be ones the optimizer accepts: checked before anything changes.
  std::vector<double> rates = checked_rates(base, e, "load_state_dict");
  epoch_ = e;
  base_lrs_ = std::move(base);
  set_rates(rates);
}

NamedTensors ReduceLROnPlateau::state_dict() const {
  return {{"best", scalar(best_, DType::f64)},
          {"num_bad_epochs", scalar(static_cast<double>(bad_), DType::f64)},
          {"cooldown_left", scalar(static_cast<double>(cooldown_left_), DType::f64)}};
}

void ReduceLROnPlateau::load_state_dict(const NamedTensors& state) {
  const double best = state_entry(state, "tapegrad::optim::ReduceLROnPlateau", "best", 1)[0];
  if (std::isnan(best)) throw std::invalid_argument("tapegrad::optim::ReduceLROnPlateau::load_state_dict: 'best' is NaN");
  const int64_t bad = state_count(state, "tapegrad::optim::ReduceLROnPlateau", "num_bad_epochs");
  const int64_t cooldown = state_count(state, "tapegrad::optim::ReduceLROnPlateau", "cooldown_left");
  best_ = best;
  bad_ = bad;
  cooldown_left_ = cooldown;
}

std::vector<double> LRScheduler::last_lr() const {
  std::vector<double> out;
  for (size_t g = 0; g < optimizer_.num_param_groups(); ++g) out.push_back(optimizer_.group_lr(g));
  return out;
}

StepLR::StepLR(Optimizer& o, int64_t step_size, double gamma)
    : LRScheduler(o, "StepLR"), step_size_(step_size), gamma_(gamma) {
  require(step_size > 0, "StepLR", "step_size must be positive, got " + std::to_string(step_size));
  require_gamma(gamma, "StepLR");
  apply();
}
double StepLR::lr_at(double base, int64_t e) const { return base * std::pow(gamma_, static_cast<double>(e / step_size_)); }

MultiStepLR::MultiStepLR(Optimizer& o, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(o, "MultiStepLR"), milestones_(std::move(milestones)), gamma_(gamma) {
  require(std::is_sorted(milestones_.begin(), milestones_.end()), "MultiStepLR", "milestones must be increasing");
  require_gamma(gamma, "MultiStepLR");
  apply();
}
double MultiStepLR::lr_at(double base, int64_t e) const {
  auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), e) - milestones_.begin();
  return base * std::pow(gamma_, static_cast<double>(passed));
}

ExponentialLR::ExponentialLR(Optimizer& o, double gamma) : LRScheduler(o, "ExponentialLR"), gamma_(gamma) {
  require_gamma(gamma, "ExponentialLR");
  apply();
}
double ExponentialLR::lr_at(double base, int64_t e) const { return base * std::pow(gamma_, static_cast<double>(e)); }

CosineAnnealingLR::CosineAnnealingLR(Optimizer& o, int64_t t_max, double eta_min)
    : LRScheduler(o, "CosineAnnealingLR"), t_max_(t_max), eta_min_(eta_min) {
  require(t_max > 0, "CosineAnnealingLR", "T_max must be positive, got " + std::to_string(t_max));
  require(eta_min >= 0 && std::isfinite(eta_min), "CosineAnnealingLR",
          "eta_min must be finite and >= 0, got " + std::to_string(eta_min));
  apply();
}
double CosineAnnealingLR::lr_at(double base, int64_t e) const {
  return eta_min_ + (base - eta_min_) * (1 + std::cos(std::numbers::pi * static_cast<double>(e) / static_cast<double>(t_max_))) / 2;
}

LinearWarmupLR::LinearWarmupLR(Optimizer& o, int64_t total_iters, double start_factor, double end_factor)
    : LRScheduler(o, "LinearWarmupLR"), total_iters_(total_iters), start_(start_factor), end_(end_factor) {
  require(total_iters > 0, "LinearWarmupLR", "total_iters must be positive, got " + std::to_string(total_iters));
  require(start_factor > 0 && start_factor <= 1 && end_factor >= 0 && end_factor <= 1, "LinearWarmupLR",
          "factors must be in (0, 1] (start) and [0, 1] (end)");
  apply();
}
double LinearWarmupLR::lr_at(double base, int64_t e) const {
  const double progress = static_cast<double>(std::min(e, total_iters_)) / static_cast<double>(total_iters_);
  return base * (start_ + (end_ - start_) * progress);
}

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& o, Mode mode, double factor, int64_t patience, double threshold,
                                     int64_t cooldown, double min_lr)
    : optimizer_(o), mode_(mode), factor_(factor), threshold_(threshold), min_lr_(min_lr),
      best_(mode == Mode::min ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity()),
      patience_(patience), cooldown_(cooldown) {
  require(factor > 0 && factor < 1, "ReduceLROnPlateau", "factor must be in (0, 1), got " + std::to_string(factor));
  require(patience >= 0 && cooldown >= 0 && threshold >= 0 && min_lr >= 0, "ReduceLROnPlateau",
          "patience, cooldown, threshold and min_lr must be >= 0");
}

void ReduceLROnPlateau::step(double metric) {
  const bool better = mode_ == Mode::min ? metric < best_ * (1 - threshold_) : metric > best_ * (1 + threshold_);
  if (better) {
    best_ = metric;
    bad_ = 0;
  } else {
    ++bad_;
  }
  if (cooldown_left_ > 0) {
    --cooldown_left_;
    bad_ = 0;
  }
  if (bad_ > patience_) {
    for (size_t g = 0; g < optimizer_.num_param_groups(); ++g)
      optimizer_.set_group_lr(g, std::max(optimizer_.group_lr(g) * factor_, min_lr_));
    cooldown_left_ = cooldown_;
    bad_ = 0;
  }
}

}  // namespace tapegrad::optim
