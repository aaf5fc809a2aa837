#pragma once
/// \file module.hpp
/// Module: the base of every layer and model, in the spirit of libtorch's C++ frontend and
/// Flashlight's module bases. A module registers its parameters, buffers and submodules by name;
/// the collections recurse with dotted names ("layers.0.weight"). Parameters are ordinary Tensor
/// handles, so copies are shallow: a copy of a module shares its parameters with the original.
///
/// `Module` itself declares no forward: a one-input layer or model derives from `UnaryModule`
/// (forward(x), what Sequential, fit, evaluate and summary take), a two-input one may derive from
/// `BinaryModule` (forward(a, b)), and a module with other inputs derives from `Module` and writes
/// the forward it needs, e.g. `Tensor forward(const Tensor& x, const Tensor& mask)`.
///
///     struct Net : nn::UnaryModule {
///       std::shared_ptr<nn::Linear> fc1, fc2;
///       Net() {
///         fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8));
///         fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 1));
///       }
///       Tensor forward(const Tensor& x) override { return (*fc2)(relu((*fc1)(x))); }
///     };
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/debug.hpp"
#include "autograd/tensor.hpp"

namespace tapegrad::nn {

class Module;
class UnaryModule;
/// How modules hold each other: shared, so a submodule can also be kept as a typed member.
using ModulePtr = std::shared_ptr<Module>;
/// A shared one-input module (Sequential's elements, a block's norm layers).
using UnaryModulePtr = std::shared_ptr<UnaryModule>;
/// (dotted name, tensor) pairs in a fixed order: named_parameters(), state_dict(), load_state_dict().
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

/// The base of every layer and model: named parameters, buffers and submodules (registered in the
/// constructor), the recursive collections over them, training / eval mode, dtype conversion and
/// the state dict (see the file comment). Holds no forward: derive from UnaryModule or
/// BinaryModule, or write the forward the inputs need.
class Module {
 public:
  virtual ~Module();

  /// A one-line description used by summary() and in errors, e.g. "Linear(784 → 128)".
  virtual std::string repr() const { return "Module"; }

  /// Every parameter of this module and its submodules, depth first, in registration order; a
  /// tensor registered under several names (a submodule used twice, tied weights) once, at its
  /// first place, as PyTorch's: so clip_grad_norm_ and the optimizers count it once.
  std::vector<Tensor> parameters() const;
  /// Same, with dotted names ("layers.0.weight"); a shared tensor under its first name.
  NamedTensors named_parameters() const;
  /// Every buffer (running statistics ...), recursive, with dotted names; a shared one once.
  NamedTensors named_buffers() const;
  /// The tensors of named_buffers(), in the same order.
  std::vector<Tensor> buffers() const;
  /// The direct submodules, in registration order.
  std::vector<ModulePtr> children() const;
  /// The direct submodules with their names, in registration order.
  std::vector<std::pair<std::string, ModulePtr>> named_children() const { return children_; }

  /// Sets training mode on this module and all submodules (Dropout, BatchNorm look at it).
  void train(bool on = true);
  /// Same as train(false).
  void eval() { train(false); }
  /// Whether this module is in training mode.
  bool is_training() const { return training_; }
  /// Drops the gradients of all parameters.
  void zero_grad();

  /// Converts every floating parameter and buffer of this module and its submodules to `dtype`
  /// (float32 or float64) in place, as PyTorch's `module.to(dtype)`: the handles keep their
  /// identity (the layers' `weight` members, named_parameters(), an optimizer's list all see the
  /// converted tensor), accumulated gradients are converted too, integer buffers (BatchNorm's
  /// num_batches_tracked) are left alone. Graphs recorded before the conversion must not be run
  /// backward (a parameter they saved reports a version mismatch). An optimizer built before the
  /// conversion keeps working if it has not stepped yet; once it holds state (Adam's moments, SGD's
  /// momentum) of the old dtype, its next step throws DTypeError: build it again after to().
  /// Throws DTypeError (naming the module) for a non-floating dtype. Returns *this.
  Module& to(DType dtype);

  /// Parameters then buffers, with dotted names.
  NamedTensors state_dict() const;
  /// Copies the values of `state` into the existing storage of the parameters and buffers (handles
  /// are not rebound, so optimizers keep working). Every name, shape and dtype is checked and all
  /// mismatches are reported in one std::invalid_argument. Missing and unexpected keys are errors
  /// when `strict`; otherwise they are skipped.
  void load_state_dict(const NamedTensors& state, bool strict = true);

 protected:
  /// Registers a parameter (sets requires_grad) and returns it. Names are checked as libtorch
  /// does: an empty name, one containing '.', or one this module already uses for a parameter,
  /// buffer or submodule throws std::invalid_argument naming the module (repr()) and the name.
  Tensor register_parameter(const std::string& name, Tensor t);
  /// Registers a buffer: saved in the state dict, no gradient. Names are checked as for parameters.
  Tensor register_buffer(const std::string& name, Tensor t);
  /// Registers a submodule and returns it. Names are checked as for parameters.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  /// Adds a submodule under `name` (register_module's untyped form).
  void add_child(const std::string& name, ModulePtr m);

 private:
  void collect(const std::string& prefix, NamedTensors& out, bool buffers) const;
  /// Throws unless `name` is a valid, unused name here; `what` is the registering function.
  void check_name(const char* what, const std::string& name) const;

  NamedTensors params_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
  bool training_ = true;
};

/// RAII: while a Profiler runs on this thread, opens a profiler scope (ScopeKind::module) named by
/// the module's path, so the profiler's tables group ops by module: UnaryModule::operator() and
/// BinaryModule::operator() open one, and a forward with other inputs opens its own
/// (`ModuleScope scope(*this);` as its first line). The path is found at run time from the module
/// scope around it: the dotted name under which that enclosing module holds this one, directly or
/// through containers without a forward of their own ("h.2" for a GPT block in the ModuleList h,
/// "h.2.attn" inside it); a module called outside every module scope is the root, named by its
/// repr() (its children's paths do not include it); one its caller does not hold is named by its
/// repr(). When this module's scope is already the innermost one (a forward overload calling
/// another) it opens nothing. Costs one thread-local test when no profiler runs.
class ModuleScope {
 public:
  /// Opens `m`'s scope when a Profiler runs on this thread (and `m` is not already the innermost);
  /// the destructor closes it.
  explicit ModuleScope(const Module& m) {
    if (profiler_enabled()) open(m);
  }
  ~ModuleScope() {
    if (opened_) close();
  }
  ModuleScope(const ModuleScope&) = delete;
  ModuleScope& operator=(const ModuleScope&) = delete;

 private:
  void open(const Module& m);
  void close();
  bool opened_ = false;
  std::optional<ProfileScope> scope_;
};

/// A module with one input: every layer, Sequential, and what fit / evaluate / predict / summary
/// take. Flashlight's UnaryModule.
class UnaryModule : public Module {
 public:
  /// The module's computation.
  virtual Tensor forward(const Tensor& x) = 0;
  /// Same as forward(x), inside a ModuleScope (named by the module's path while a Profiler runs).
  Tensor operator()(const Tensor& x) {
    ModuleScope scope(*this);
    return forward(x);
  }

  /// A Keras-like table: one row per layer with its output shape and parameter count, then the
  /// totals. Runs one forward pass, in eval mode without recording (the modes are restored), on
  /// zeros of `input_shape` and `dtype` — by default the dtype of the first parameter (float32
  /// without parameters); pass DType::i64 for a model that starts with an Embedding.
  std::string summary(const Shape& input_shape, std::optional<DType> dtype = std::nullopt);

  /// One summary row per leaf layer.
  struct SummaryRow {
    std::string layer;  ///< "<prefix><repr()>"
    Shape output;       ///< the layer's output shape
    int64_t params;     ///< parameters of the layer, its submodules included
  };
  /// Runs forward(x) and appends this module's row; containers override it to recurse into their
  /// children (prefixing their rows with `prefix`).
  virtual Tensor summarize(const Tensor& x, const std::string& prefix, std::vector<SummaryRow>& rows);
};

/// A module with two inputs, forward(a, b) (Flashlight's BinaryModule), e.g. a learned distance.
class BinaryModule : public Module {
 public:
  /// The module's computation.
  virtual Tensor forward(const Tensor& a, const Tensor& b) = 0;
  /// Same as forward(a, b), inside a ModuleScope (named by the module's path while a Profiler runs).
  Tensor operator()(const Tensor& a, const Tensor& b) {
    ModuleScope scope(*this);
    return forward(a, b);
  }
};

namespace detail {
template <class M>
UnaryModulePtr to_unary_ptr(M&& m) {
  using D = std::decay_t<M>;
  if constexpr (std::is_convertible_v<D, UnaryModulePtr>) return UnaryModulePtr(std::forward<M>(m));
  else return std::make_shared<D>(std::forward<M>(m));
}
/// What Sequential accepts: a UnaryModule by value, or a shared pointer to one.
template <class M>
constexpr bool is_unary_arg = std::is_base_of_v<UnaryModule, std::decay_t<M>> ||
                              std::is_convertible_v<std::decay_t<M>, UnaryModulePtr>;
}  // namespace detail

/// Applies its modules in order: y = m_k(…m_2(m_1(x))). Children are named "0", "1", ...
/// It holds UnaryModules only: passing a module without a one-input forward does not compile.
///
///     auto model = std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(),
///                                                   nn::Linear(128, 10));
class Sequential : public UnaryModule {
 public:
  /// An empty Sequential (the identity until modules are appended).
  Sequential() = default;
  /// Takes modules by value (moved into shared pointers) or as shared pointers.
  template <class... Ms>
    requires((sizeof...(Ms) > 0) && (detail::is_unary_arg<Ms> && ...) &&
             !(sizeof...(Ms) == 1 && (std::is_same_v<std::decay_t<Ms>, Sequential> && ...)))
  explicit Sequential(Ms&&... modules) {
    (push_back(detail::to_unary_ptr(std::forward<Ms>(modules))), ...);
  }
  /// Appends a module named by its position.
  void push_back(UnaryModulePtr m);
  /// The number of modules.
  size_t size() const { return modules_.size(); }
  /// The i-th module (std::out_of_range past the end).
  const UnaryModulePtr& operator[](size_t i) const { return modules_.at(i); }
  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return "Sequential"; }
  Tensor summarize(const Tensor& x, const std::string& prefix, std::vector<SummaryRow>& rows) override;

 private:
  std::vector<UnaryModulePtr> modules_;
};

/// A list of modules of any kind, without a forward of its own (the owner decides how to call
/// them); children are named "0", "1", ...
///
///     for (size_t i = 0; i < blocks.size(); ++i) x = (*blocks.at<nn::Linear>(i))(x);
class ModuleList : public Module {
 public:
  /// An empty list.
  ModuleList() = default;
  /// Appends a module named by its position.
  void push_back(ModulePtr m);
  /// The number of modules.
  size_t size() const { return modules_.size(); }
  /// The i-th module (std::out_of_range past the end).
  const ModulePtr& operator[](size_t i) const { return modules_.at(i); }
  /// The i-th module as a T; throws std::invalid_argument naming the index and the module's repr()
  /// when it is not one (and std::out_of_range past the end).
  template <class T>
  std::shared_ptr<T> at(size_t i) const {
    auto p = std::dynamic_pointer_cast<T>(modules_.at(i));
    if (!p) throw_wrong_type(i);
    return p;
  }
  /// Iteration over the modules, in order (const iterators to ModulePtr).
  ///@{
  auto begin() const { return modules_.begin(); }
  auto end() const { return modules_.end(); }
  ///@}
  std::string repr() const override { return "ModuleList"; }

 private:
  [[noreturn]] void throw_wrong_type(size_t i) const;
  std::vector<ModulePtr> modules_;
};

}  // namespace tapegrad::nn
