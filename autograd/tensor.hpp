#pragma once
/// \file tensor.hpp
/// Tensor: the handle users hold. It is a shared pointer to a TensorImpl (data + autograd state),
/// so copies are shallow, exactly like Flashlight's fl::Variable or a PyTorch tensor:
///
///     Tensor a = tapegrad::ones({2, 2});
///     Tensor b = a;          // b and a are the same tensor
///     b.data<float>()[0] = 5; // a.at({0, 0}) == 5 too
///     Tensor c = a.clone();  // an independent copy
///
/// Storage is always contiguous and row-major; reshape, detach and leading-dimension slices are
/// views sharing storage (with an element offset).
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "autograd/dtype.hpp"
#include "autograd/shape.hpp"
#include "autograd/storage.hpp"

namespace tapegrad {

class Node;
class Tensor;
struct LeafHooks;  ///< a leaf's post-accumulate-grad hooks (defined in engine.cpp)

/// A function called once per backward pass, after a leaf's grad() has received every contribution
/// of that pass (Tensor::register_post_accumulate_grad_hook). It gets the leaf; read leaf.grad().
using PostAccumulateGradHook = std::function<void(const Tensor& leaf)>;

/// Unregisters a hook (returned by Tensor::register_post_accumulate_grad_hook). Copyable; a
/// default-constructed handle, or one whose tensor is gone, removes nothing.
class HookHandle {
 public:
  HookHandle() = default;
  /// Wraps hook `id` of `hooks` (engine-internal).
  HookHandle(std::weak_ptr<LeafHooks> hooks, uint64_t id) : hooks_(std::move(hooks)), id_(id) {}
  /// Unregisters the hook: later backward passes no longer call it. Idempotent.
  void remove();

 private:
  std::weak_ptr<LeafHooks> hooks_;  ///< the leaf's hook list
  uint64_t id_ = 0;                 ///< the hook's id in it
};

/// Autograd and data state behind a Tensor handle. Users do not touch it directly.
struct TensorImpl {
  Storage storage;                         ///< the buffer, shared by views
  int64_t offset = 0;                      ///< where this tensor starts in it, in elements
  Shape shape;                             ///< dimension sizes
  int64_t numel = 0;                       ///< product of shape
  DType dtype = DType::f32;                ///< element type
  bool requires_grad = false;              ///< a leaf parameter, or the output of a recorded op
  std::shared_ptr<Node> grad_fn;           ///< the op that produced this tensor (non-leaf)
  std::shared_ptr<Node> grad_accumulator;  ///< leaves that require grad: where gradients land
  std::shared_ptr<TensorImpl> grad;        ///< the accumulated .grad of a leaf
  std::shared_ptr<LeafHooks> post_accumulate_hooks;  ///< a leaf's post-accumulate-grad hooks (or null)
};

/// A shared handle to a TensorImpl: copies alias the same data and autograd state (see the file
/// comment); clone() copies the data, detach() drops the history.
class Tensor {
 public:
  /// An undefined tensor (no data); `defined()` is false.
  Tensor() = default;
  /// Wraps an existing impl (library-internal; users create tensors with the functions below).
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  /// An uninitialised tensor of the given shape and dtype.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);

  /// False for a default-constructed Tensor (an absent gradient, an unused optional input).
  bool defined() const { return impl_ != nullptr; }
  /// Every accessor below throws std::invalid_argument "tapegrad::Tensor::<name>: the tensor is
  /// undefined (default-constructed)" on an undefined tensor: one predictable branch each.
  const Shape& shape() const { return get("shape").shape; }
  /// Size of dimension `d` (negative counts from the end); ShapeError on a 0-d tensor, which has none.
  int64_t size(int64_t d) const;
  /// The rank (0 for a scalar).
  int64_t dim() const { return static_cast<int64_t>(get("dim").shape.size()); }
  /// The number of elements (1 for a 0-d tensor).
  int64_t numel() const { return get("numel").numel; }
  /// The element type.
  DType dtype() const { return get("dtype").dtype; }

  /// Raw contiguous data for reading; T must match dtype() (checked).
  template <class T> const T* data() const;
  /// Raw contiguous data for writing; T must match dtype() (checked). Bumps the version counter,
  /// so a backward that saved this tensor (or any view of its storage) before the write refuses to
  /// run instead of computing a wrong gradient. Write through this, not through data().
  template <class T> T* mutable_data() const {
    get("mutable_data").storage.bump_version();
    return const_cast<T*>(data<T>());
  }
  /// The version counter shared by every view of this tensor's storage (see mutable_data).
  uint64_t version() const { return get("version").storage.version(); }
  /// Marks the data as modified: call after writing through a pointer obtained earlier.
  void bump_version() const { get("bump_version").storage.bump_version(); }
  /// The single value of a one-element tensor, as double (bool: 0 or 1).
  double item() const;
  /// Element at a multi-index, as double.
  double at(std::initializer_list<int64_t> index) const;
  double at(const std::vector<int64_t>& index) const;  ///< at() with a runtime-length index
  /// All elements, converted to double, in row-major order.
  std::vector<double> to_vector() const;

  // ---- autograd ------------------------------------------------------------------------------
  /// Whether gradients flow to or through this tensor (a parameter, or a recorded op's output).
  bool requires_grad() const { return get("requires_grad").requires_grad; }
  /// Marks a leaf as a parameter whose gradient is accumulated into grad(). Throws AutogradError
  /// on non-leaves and DTypeError on int64 and bool tensors (only floating tensors have gradients).
  Tensor& requires_grad_(bool value = true);
  /// A leaf is a tensor not produced by a recorded op.
  bool is_leaf() const { return get("is_leaf").grad_fn == nullptr; }
  /// The node that produced this tensor on the tape (null for a leaf).
  const std::shared_ptr<Node>& grad_fn() const { return get("grad_fn").grad_fn; }
  /// The accumulated gradient (undefined until a backward reaches this leaf).
  Tensor grad() const { return Tensor(get("grad").grad); }
  /// Replaces the accumulated gradient (undefined `g` clears it); ShapeError unless g has this shape and dtype.
  void set_grad(const Tensor& g);
  /// Drops the accumulated gradient.
  void zero_grad() { get("zero_grad").grad.reset(); }
  /// Registers `hook`, called once per backward() pass that reaches this leaf, right after grad()
  /// has received all of that pass's contributions (PyTorch's register_post_accumulate_grad_hook):
  /// leaves complete in the order backward finishes with them, each as soon as the last op that
  /// uses it has run, so a hook can start work (an all-reduce) while backward goes on. Hooks run on
  /// the backward's thread, in registration order; with retain_graph, once per pass; never for
  /// grad(), which accumulates nothing. Throws AutogradError for a non-leaf or a tensor that does
  /// not require grad. The hooks survive requires_grad_ toggles and Module::to.
  HookHandle register_post_accumulate_grad_hook(PostAccumulateGradHook hook) const;
  /// Back-propagates from this tensor. A non-scalar needs an explicit `grad` of its shape.
  /// Without `retain_graph` the graph's saved tensors are freed afterwards.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false, bool create_graph = false) const;
  /// Same data, no history, requires_grad false.
  Tensor detach() const;
  /// A deep copy that is recorded on the tape (gradient flows back to this tensor).
  Tensor clone() const;
  /// Converts dtype (recorded between floating dtypes; the gradient is converted back). To bool,
  /// nonzero (NaN included) is true; floating to int64 truncates toward zero.
  Tensor to(DType dtype) const;
  /// True when both handles point to the same tensor.
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- views and common ops as methods (see functions.hpp for the full op set) -----------------
  /// tapegrad::reshape(*this, shape): a view with the same elements (one dimension may be −1).
  Tensor reshape(const Shape& shape) const;
  /// Same as reshape (PyTorch's name).
  Tensor view(const Shape& shape) const { return reshape(shape); }
  /// The transpose of a 2-D tensor.
  Tensor t() const;
  /// Sum of all elements, 0-d.
  Tensor sum() const;
  /// Mean of all elements, 0-d.
  Tensor mean() const;

  /// The values, shape and dtype as text (what operator<< prints).
  std::string to_string() const;
  /// The shared state (for the library's own code and the engine).
  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }

 private:
  /// The impl, after the one check that it exists (`what` names the accessor in the error).
  TensorImpl& get(const char* what) const {
    if (!impl_) [[unlikely]] throw_undefined(what);
    return *impl_;
  }
  [[noreturn, gnu::cold, gnu::noinline]] static void throw_undefined(const char* what);

  std::shared_ptr<TensorImpl> impl_;
};

/// Prints t.to_string().
std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- creation --------------------------------------------------------------------------------
/// A tensor with the given values (row-major) and shape; the value count must match the shape.
/// Values are converted to the dtype: to bool, nonzero is true; to int64, truncated.
Tensor tensor(const std::vector<double>& values, const Shape& shape, DType dtype = DType::f32);
/// A 1-D tensor of the values.
Tensor tensor(const std::vector<double>& values, DType dtype = DType::f32);
/// An int64 tensor (indices, labels).
Tensor index_tensor(const std::vector<int64_t>& values, const Shape& shape);
Tensor index_tensor(const std::vector<int64_t>& values);  ///< a 1-D int64 tensor
/// A 0-d tensor.
Tensor scalar(double value, DType dtype = DType::f32);
///@{
/// A new tensor filled with 0, 1 or `value` (converted to the dtype); the _like forms take t's shape
/// and dtype. None of them requires grad.
Tensor zeros(const Shape& shape, DType dtype = DType::f32);
Tensor ones(const Shape& shape, DType dtype = DType::f32);
Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
///@}
/// [start, stop) with the given step, like numpy.arange, in any dtype but bool: start + i·step
/// converted to the dtype (`arange(0, 5, 1, DType::i64)` is the int64 0, 1, 2, 3, 4).
Tensor arange(double start, double stop, double step = 1.0, DType dtype = DType::f32);

}  // namespace tapegrad
