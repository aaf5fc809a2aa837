#pragma once
/// \file module.hpp
/// Module: the base of every layer and model, in the spirit of libtorch's C++ frontend. A module
/// registers its parameters, buffers and submodules by name; the collections recurse with dotted
/// names ("layers.0.weight"). Parameters are ordinary Tensor handles, so copies are shallow: a copy
/// of a module shares its parameters with the original.
///
///     struct Net : nn::Module {
///       std::shared_ptr<nn::Linear> fc1, fc2;
///       Net() {
///         fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8));
///         fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 1));
///       }
///       Tensor forward(const Tensor& x) override { return (*fc2)(relu((*fc1)(x))); }
///     };
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad::nn {

class Module;
using ModulePtr = std::shared_ptr<Module>;
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module();

  /// The module's computation.
  virtual Tensor forward(const Tensor& x) = 0;
  /// Same as forward(x).
  Tensor operator()(const Tensor& x) { return forward(x); }
  /// A one-line description used by summary(), e.g. "Linear(784 → 128)".
  virtual std::string repr() const { return "Module"; }

  /// Every parameter of this module and its submodules, depth first, in registration order.
  std::vector<Tensor> parameters() const;
  /// Same, with dotted names ("layers.0.weight").
  NamedTensors named_parameters() const;
  /// Every buffer (running statistics ...), recursive, with dotted names.
  NamedTensors named_buffers() const;
  std::vector<Tensor> buffers() const;
  /// The direct submodules, in registration order.
  std::vector<ModulePtr> children() const;
  std::vector<std::pair<std::string, ModulePtr>> named_children() const { return children_; }

  /// Sets training mode on this module and all submodules (Dropout, BatchNorm look at it).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  /// Drops the gradients of all parameters.
  void zero_grad();

  /// A Keras-like table: one row per layer with its output shape and parameter count, then the
  /// totals. Runs one forward pass on zeros of `input_shape` in eval mode without recording.
  std::string summary(const Shape& input_shape);

  /// Parameters then buffers, with dotted names.
  NamedTensors state_dict() const;
  /// Copies the values of `state` into the existing storage of the parameters and buffers (handles
  /// are not rebound, so optimizers keep working). Every name, shape and dtype is checked and all
  /// mismatches are reported in one std::invalid_argument. Missing and unexpected keys are errors
  /// when `strict`; otherwise they are skipped.
  void load_state_dict(const NamedTensors& state, bool strict = true);

  /// One summary row per leaf layer; containers override it to recurse into their children.
  struct SummaryRow {
    std::string layer;
    Shape output;
    int64_t params;
  };
  virtual Tensor summarize(const Tensor& x, const std::string& prefix, std::vector<SummaryRow>& rows);

 protected:
  /// Registers a parameter (sets requires_grad) and returns it.
  Tensor register_parameter(const std::string& name, Tensor t);
  /// Registers a buffer: saved in the state dict, no gradient.
  Tensor register_buffer(const std::string& name, Tensor t);
  /// Registers a submodule and returns it.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  /// Adds a submodule under `name` (register_module's untyped form).
  void add_child(const std::string& name, ModulePtr m);

 private:
  void collect(const std::string& prefix, NamedTensors& out, bool buffers) const;

  NamedTensors params_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
  bool training_ = true;
};

namespace detail {
template <class M>
ModulePtr to_module_ptr(M&& m) {
  using D = std::decay_t<M>;
  if constexpr (std::is_convertible_v<D, ModulePtr>) return ModulePtr(std::forward<M>(m));
  else return std::make_shared<D>(std::forward<M>(m));
}
template <class M>
constexpr bool is_module_arg = std::is_base_of_v<Module, std::decay_t<M>> ||
                               std::is_convertible_v<std::decay_t<M>, ModulePtr>;
}  // namespace detail

/// Applies its modules in order: y = m_k(…m_2(m_1(x))). Children are named "0", "1", ...
///
///     auto model = std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(),
///                                                   nn::Linear(128, 10));
class Sequential : public Module {
 public:
  Sequential() = default;
  /// Takes modules by value (moved into shared pointers) or as shared pointers.
  template <class... Ms>
    requires((sizeof...(Ms) > 0) && (detail::is_module_arg<Ms> && ...) &&
             !(sizeof...(Ms) == 1 && (std::is_same_v<std::decay_t<Ms>, Sequential> && ...)))
  explicit Sequential(Ms&&... modules) {
    (push_back(detail::to_module_ptr(std::forward<Ms>(modules))), ...);
  }
  /// Appends a module named by its position.
  void push_back(ModulePtr m);
  size_t size() const { return modules_.size(); }
  const ModulePtr& operator[](size_t i) const { return modules_.at(i); }
  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return "Sequential"; }
  Tensor summarize(const Tensor& x, const std::string& prefix, std::vector<SummaryRow>& rows) override;

 private:
  std::vector<ModulePtr> modules_;
};

/// A list of modules without a forward of its own (the owner decides how to call them); children
/// are named "0", "1", ...
class ModuleList : public Module {
 public:
  ModuleList() = default;
  void push_back(ModulePtr m);
  size_t size() const { return modules_.size(); }
  const ModulePtr& operator[](size_t i) const { return modules_.at(i); }
  auto begin() const { return modules_.begin(); }
  auto end() const { return modules_.end(); }
  /// Throws: a ModuleList has no forward.
  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return "ModuleList"; }

 private:
  std::vector<ModulePtr> modules_;
};

}  // namespace tapegrad::nn
