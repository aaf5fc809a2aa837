#pragma once
/// \file optimizer.hpp
/// The optimizer base: parameter groups (each with its own options, learning rate included),
/// per-parameter state, zero_grad, and a state dict of the state and the options. Updates mutate
/// the parameters' storage in place (handles are never rebound) with recording off, and skip
/// parameters that have no gradient.
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/debug.hpp"
#include "autograd/node.hpp"
#include "autograd/tensor.hpp"

namespace tapegrad::optim {

/// A state dict: (name, tensor) pairs in a stable order, as nn::save_safetensors writes them.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

/// Reading one entry of a state dict (schedulers', fit callbacks'); `who` names the owner in errors,
/// which are std::invalid_argument "<who>::load_state_dict: ...".
/// The entry `key` as its `numel` values; throws when it is missing or has another size.
std::vector<double> state_entry(const NamedTensors& state, const std::string& who, const std::string& key, int64_t numel);
/// The one value of entry `key`, or nullopt when the state has no such entry.
std::optional<double> optional_state_entry(const NamedTensors& state, const std::string& who, const std::string& key);
/// A counter entry: a finite, non-negative whole number.
int64_t state_count(const NamedTensors& state, const std::string& who, const std::string& key);

/// Declares a chainable option in an options struct: `name(v)` sets and returns *this, `name()` gets.
/// The API documentation lists each such option as a public attribute `T name = init` (its default),
/// with the comment written above or after the TAPEGRAD_OPTION line (docs/Doxyfile's PREDEFINED).
#define TAPEGRAD_OPTION(T, name, init)  \
 public:                                \
  auto& name(T v) {                     \
    name##_ = v;                        \
    return *this;                       \
  }                                     \
  T name() const { return name##_; }    \
                                        \
 private:                               \
  T name##_ = init

/// One named option of a group, for state dicts: exactly one of number / flag is set.
struct OptionField {
  const char* name;  ///< the key in "param_groups.<g>.<name>"
  double* number;    ///< the field, when it is a number (else null)
  bool* flag;        ///< the field, when it is a flag (else null)
};

/// Base of every optimizer: parameter groups, per-parameter state, zero_grad and state dicts.
/// Subclasses implement step() and describe their options through group_fields().
class Optimizer {
 public:
  virtual ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update of every parameter that has a gradient.
  virtual void step() = 0;
  /// Drops the gradients of all parameters.
  void zero_grad();

  /// Learning rate of the first group.
  double lr() const;
  /// Sets the learning rate of every group; std::invalid_argument (nothing changed) unless lr is
  /// finite and >= 0.
  void set_lr(double lr);
  /// How many parameter groups there are (1 + the add_param_group calls).
  size_t num_param_groups() const { return groups_.size(); }
  /// Learning rate of group `group` (std::out_of_range past the last group).
  double group_lr(size_t group) const;
  /// Sets the learning rate of one group only (schedulers scale each group's own rate);
  /// std::invalid_argument unless lr is finite and >= 0.
  void set_group_lr(size_t group, double lr);
  /// The parameters of group `group`, in the order they were given.
  const std::vector<Tensor>& group_params(size_t group) const { return groups_.at(group); }
  /// All parameters of all groups.
  std::vector<Tensor> parameters() const;

  /// "state.<i>.<name>" for each parameter's state (i counts parameters across groups) and
  /// "param_groups.<g>.<option>" as 0-d float64 tensors; saveable with nn::save_safetensors.
  NamedTensors state_dict() const;
  /// Restores a state dict of an optimizer of the same kind over the same parameter shapes. The
  /// options are checked exactly as the constructor checks them (options_problem), flags must be 0
  /// or 1, "step" counters whole numbers >= 0 and all state finite. Every problem is reported in one
  /// std::invalid_argument and nothing is changed on error.
  void load_state_dict(const NamedTensors& state);
  /// load_state_dict's checks alone: throws what it would throw, changes nothing.
  void check_state_dict(const NamedTensors& state) const;

 protected:
  /// What every step() runs under: nothing is recorded on the tape, denormals are flushed
  /// (decaying state, such as Adam's moments for always-zero inputs, must not fall into slow
  /// denormal arithmetic), and the Profiler does not count the step as an op's forward.
  struct StepScope {
    NoGradGuard no_grad;                ///< nothing recorded
    FlushDenormalGuard flush_denormal;  ///< denormals flushed to zero
    NotAnOpScope not_an_op;             ///< not counted by the Profiler
  };
  /// `name` ("Adam", "SGD", ...) starts every error message and names the state dict's owner.
  explicit Optimizer(const char* name) : name_(name) {}
  /// Validates and appends a group (parameters must be floating leaves, not already present).
  void add_group(std::vector<Tensor> params);
  /// The options of group g, by name.
  virtual std::vector<OptionField> group_fields(size_t g) = 0;
  /// What is wrong with group g's options once `values` (option name → value, flags as 0 / 1)
  /// replace some of them, or "" when they are valid. Implementations return
  /// options_problem(with_values(their options of g, values)): the constructor's own check.
  virtual std::string group_options_problem(size_t g, const std::map<std::string, double>& values) const = 0;
  /// The one check of an options struct, shared by the constructor (add_param_group) and
  /// load_state_dict: every number finite, then the struct's own rules (Options::problem()).
  template <class Options>
  static std::string options_problem(Options o) {
    for (auto& f : o.fields())
      if (f.number && !std::isfinite(*f.number)) return std::string(f.name) + " must be finite, got " + std::to_string(*f.number);
    return o.problem();
  }
  /// A copy of `o` with `values` (option name → value) replacing its fields.
  template <class Options>
  static Options with_values(Options o, const std::map<std::string, double>& values) {
    for (auto& f : o.fields())
      if (auto it = values.find(f.name); it != values.end()) {
        if (f.number) *f.number = it->second;
        else *f.flag = it->second != 0;
      }
    return o;
  }
  /// Throws invalid() when options_problem(o) finds something.
  template <class Options>
  void check_options(const Options& o) const {
    if (auto why = options_problem(o); !why.empty()) invalid(why);
  }
  /// group_fields for const callers (state_dict): the pointers are only read through.
  std::vector<OptionField> group_fields(size_t g) const { return const_cast<Optimizer*>(this)->group_fields(g); }
  /// State tensor `name` of parameter i (counted across groups), created as full(p, init) on first use.
  Tensor& state(size_t i, const char* name, const Tensor& p, double init = 0.0);
  /// A scalar counter of parameter i (stored as a 0-d float64 state tensor), 0 on first use.
  double& counter(size_t i, const char* name);
  /// Whether parameter i already has state `name`.
  bool has_state(size_t i, const char* name) const { return state_[i].count(name) != 0; }
  /// Calls f(param, grad, flat_index) for every parameter of group g that has a gradient.
  template <class F>
  void for_each_param(size_t g, F&& f) {
    size_t flat = 0;
    for (size_t k = 0; k < g; ++k) flat += groups_[k].size();
    for (size_t j = 0; j < groups_[g].size(); ++j, ++flat) {
      const Tensor& p = groups_[g][j];
      Tensor grad = p.grad();
      if (grad.defined()) f(p, grad, flat);
    }
  }
  /// The error for an invalid option: "tapegrad::optim::<Name>: <what>".
  [[noreturn]] void invalid(const std::string& what) const;

  const char* name_;                                   ///< the optimizer's name, for errors
  std::vector<std::vector<Tensor>> groups_;            ///< parameters, by group
  std::vector<std::map<std::string, Tensor>> state_;   ///< per parameter (counted across groups): name → state

 private:
  /// A state dict that passed every check: each parameter's state (the caller's tensors, cloned
  /// when applied) and each group's options by name.
  struct Staged {
    std::vector<std::map<std::string, Tensor>> state;
    std::vector<std::map<std::string, double>> options;
  };
  Staged stage(const NamedTensors& dict) const;
};

namespace detail {
/// Calls f(float{}) or f(double{}) for the parameter's dtype.
template <class F>
void dispatch(const Tensor& p, F&& f) {
  if (p.dtype() == DType::f32) f(float{});
  else f(double{});
}
}  // namespace detail

}  // namespace tapegrad::optim
