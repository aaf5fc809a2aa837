#pragma once
/// \file node.hpp
/// The tape's entries. Each recorded op creates one Node holding its backward function, the
/// edges to the nodes of its inputs, and the tensors its backward needs. Nodes carry a sequence
/// number from one process-wide counter: the engine replays them in decreasing sequence order,
/// which is the reverse of the order they were recorded in, whichever threads recorded them.
///
/// Ops record themselves with `record(name, result, {inputs...}, [saved,] backward)`:
///
///     Tensor mul(const Tensor& a, const Tensor& b) {
///       Tensor result = /* kernel */;
///       return record("mul", result, {a, b}, save_for_backward(a, b), [](const BackwardContext& ctx) -> Grads {
///         const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
///         return {ctx.needs(0) ? sum_to(ctx.grad * b, a.shape()) : Tensor(),
///                 ctx.needs(1) ? sum_to(ctx.grad * a, b.shape()) : Tensor()};
///       });
///     }
///
/// Tensors the backward reads go through `save_for_backward` (PyTorch's ctx.save_for_backward),
/// never into the lambda's captures: the node records each one's version counter and the engine
/// compares it before the backward runs, so data written in place after the op (through
/// mutable_data, an optimizer step, an initializer, load_state_dict) is an error naming the op,
/// the tensor and both versions instead of a silently wrong gradient. Shapes and scalars are
/// captured by value. The op's own output is saved with `save_result = true` (`ctx.result`).
///
/// Backward functions are written with tapegrad's own differentiable ops, so with
/// create_graph=true the backward pass is itself recorded (higher-order gradients).
#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// The gradients a backward function returns: one per input of the op, in the order the inputs were
/// passed to record(); an undefined Tensor where the input needs no gradient (see ctx.needs(i)).
using Grads = std::vector<Tensor>;
class Node;
namespace detail {
void attach(Node& node, const Tensor& result, const Tensor* inputs, size_t n, bool save_result);
}

/// A tensor saved for backward with the version its storage had then.
struct SavedTensor {
  Tensor tensor;         ///< the saved tensor (shares its storage with the caller's tensor)
  uint64_t version = 0;  ///< its storage's version counter when it was saved
  int input = -1;  ///< which input of the op it is, or -1 (an index, targets, an internal buffer)
};

/// The tensors an op's backward reads: `save_for_backward(a, b)` (or a vector of them).
template <size_t N>
struct SaveList {
  std::array<Tensor, N> tensors;  ///< in the order given; ctx.saved(i) returns tensors[i]
};
/// The tensors `tensors...` saved for backward, for record(name, result, inputs, saved, backward).
template <class... T>
SaveList<sizeof...(T)> save_for_backward(const T&... tensors) {
  return {{Tensor(tensors)...}};
}
/// A run-time number of tensors saved for backward: `save_for_backward(std::vector<Tensor>)`.
struct SaveVector {
  std::vector<Tensor> tensors;  ///< in the order given; ctx.saved(i) returns tensors[i]
};
/// The tensors of `tensors` saved for backward, for the record() overload taking a vector of inputs.
inline SaveVector save_for_backward(std::vector<Tensor> tensors) { return {std::move(tensors)}; }

/// What a backward function receives.
struct BackwardContext {
  const Tensor& grad;    ///< gradient of the loss w.r.t. the op's output
  const Tensor& result;  ///< the op's output (defined only when recorded with save_result)
  const Node& node;      ///< the node being run (its name, its saved tensors)
  /// Whether input i needs a gradient (skip the work otherwise).
  bool needs(size_t i) const;
  /// The i-th tensor passed to save_for_backward (its version was checked before this backward ran).
  const Tensor& saved(size_t i) const;
};

/// One recorded op on the tape: its backward, the edges to its inputs' nodes and what it saved.
/// Created by record() (a FunctionNode) or for a leaf's gradient accumulation; read it through
/// Tensor::grad_fn() to inspect the graph.
class Node : public std::enable_shared_from_this<Node> {
 public:
  /// A node for the op `name` (a string literal, not copied) with sequence number `seq`.
  Node(const char* name, uint64_t seq) : name_(name), seq_(seq) {}
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// The op's name as recorded ("mul", "matmul", a custom op's name).
  const char* name() const { return name_; }
  /// The sequence number: later-recorded nodes have larger ones; backward runs them in decreasing order.
  uint64_t sequence() const { return seq_; }
  /// One edge per input; null where the input needs no gradient.
  const std::vector<std::shared_ptr<Node>>& next() const { return next_; }
  /// Shape and dtype of the tensor this node's gradient is for.
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }  ///< see shape()
  /// True once backward has freed what the node saved (backward without retain_graph); a second
  /// backward through it then throws AutogradError.
  bool released() const { return released_; }
  /// The tensors saved for backward (empty once released).
  const SavedTensor* saved() const { return saved_; }
  size_t saved_count() const { return n_saved_; }  ///< the number of entries of saved()
  /// Throws AutogradError when a saved tensor (or the saved output) was modified in place since
  /// the op recorded it, naming the op, the tensor and both versions. `who` starts the message.
  void check_saved_versions(const char* who) const;

  /// Computes the gradients for the inputs. Engine-internal.
  virtual Grads apply(const Tensor& grad) = 0;
  /// Frees what was saved for backward.
  virtual void release() { released_ = true; saved_result_ = Tensor(); }
  /// True for the node that accumulates a leaf tensor's gradient into its .grad() (no backward).
  virtual bool is_accumulator() const { return false; }
  /// Bytes this node keeps for backward: its saved output plus its closure. Saved inputs share
  /// their storage with the live tensors (no copy) and are not counted.
  virtual size_t saved_bytes() const;

 protected:
  friend class Engine;
  friend void detail::attach(Node&, const Tensor&, const Tensor*, size_t, bool);
  /// The saved output, attached to this node so that create_graph can differentiate through it.
  Tensor unpack_result();

  const char* name_;                         ///< name()
  uint64_t seq_;                             ///< sequence()
  std::vector<std::shared_ptr<Node>> next_;  ///< next()
  Shape shape_;                              ///< shape()
  DType dtype_ = DType::f32;                 ///< dtype()
  bool released_ = false;                    ///< released()
  Tensor saved_result_;  ///< detached view of the output, re-attached to this node on unpack
  uint64_t result_version_ = 0;   ///< the output's version when saved (checked like saved inputs)
  SavedTensor* saved_ = nullptr;  ///< saved(): points into the derived node's storage
  size_t n_saved_ = 0;            ///< saved_count()
};

/// A node whose backward is a callable `Grads(const BackwardContext&)`; `Saved` holds the saved
/// tensors (std::array<SavedTensor, N> or std::vector<SavedTensor>).
template <class F, class Saved>
class FunctionNode final : public Node {
 public:
  /// A node running `f` as its backward, keeping `saved` (filled by record()).
  FunctionNode(const char* name, uint64_t seq, F&& f, Saved saved)
      : Node(name, seq), fn_(std::move(f)), saved_storage_(std::move(saved)) {
    saved_ = saved_storage_.data();
    n_saved_ = saved_storage_.size();
  }
  Grads apply(const Tensor& grad) override {
    Tensor result = unpack_result();
    return (*fn_)(BackwardContext{grad, result, *this});
  }
  void release() override {
    Node::release();
    fn_.reset();
    for (auto& s : saved_storage_) s.tensor = Tensor();
    n_saved_ = 0;
  }
  size_t saved_bytes() const override { return Node::saved_bytes() + (fn_ ? sizeof(F) : 0); }

 private:
  std::optional<F> fn_;
  Saved saved_storage_;
};

// ---- grad mode -----------------------------------------------------------------------------
/// Whether ops are being recorded on this thread.
bool grad_enabled();
/// Turns recording on or off for this thread (on by default in each thread). Prefer the RAII guards
/// NoGradGuard / GradModeGuard, which restore the previous mode.
void set_grad_enabled(bool enabled);

/// RAII: disables recording in its scope (inference, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};
using no_grad = NoGradGuard;  ///< PyTorch's spelling: `no_grad guard;`

/// RAII: sets grad mode to `enabled` in its scope.
class GradModeGuard {
 public:
  /// Sets grad mode to `enabled` until the guard is destroyed, then restores the previous mode.
  explicit GradModeGuard(bool enabled) : prev_(grad_enabled()) { set_grad_enabled(enabled); }
  ~GradModeGuard() { set_grad_enabled(prev_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool prev_;
};

namespace detail {
uint64_t next_sequence();
/// True when recording is on and some input requires grad.
bool should_record(const Tensor* inputs, size_t n);
/// The leaf tensor whose gradients `node` receives when it is a leaf's accumulator (the edge a
/// parameter gets), else (or when the leaf is gone) undefined. For graph walks that must name
/// the leaves they reach (autograd/checkpoint.hpp).
Tensor accumulator_leaf(const Node& node);
/// Hooks for the profiler and anomaly mode (debug.hpp); null when off, so they cost one test.
extern thread_local void (*on_record)(const Node&, const Tensor& result);
extern thread_local void (*on_backward)(const Node&, const Grads& grads, double seconds);
extern thread_local void (*on_allocate)();
/// Sets this thread's on_backward hook (null: off) and returns the previous one. Code outside the
/// library (tests) uses this instead of the thread_local itself: UBSan (GCC 12) flags a store to an
/// extern thread_local through another module's TLS wrapper as a store to null.
using BackwardHook = void (*)(const Node&, const Grads& grads, double seconds);
BackwardHook set_backward_hook(BackwardHook hook);
}  // namespace detail

namespace detail {
/// Fills `out` (sized like `tensors`) with each tensor, its version and its input position.
void save_tensors(SavedTensor* out, const Tensor* tensors, size_t n_saved, const Tensor& result,
                  const Tensor* inputs, size_t n_inputs, const char* op);

template <class F, class Saved>
Tensor record_node(const char* name, const Tensor& result, const Tensor* inputs, size_t n, F&& backward,
                   Saved&& saved, const Tensor* to_save, bool save_result) {
  if (!should_record(inputs, n)) return result;
  save_tensors(saved.data(), to_save, saved.size(), result, inputs, n, name);
  auto node = std::make_shared<FunctionNode<std::decay_t<F>, std::decay_t<Saved>>>(
      name, next_sequence(), std::forward<F>(backward), std::move(saved));
  attach(*node, result, inputs, n, save_result);
  result.impl()->grad_fn = std::move(node);
  if (on_record) on_record(*result.impl()->grad_fn, result);
  return result;
}
template <class F>
Tensor record_inputs(const char* name, const Tensor& result, const Tensor* inputs, size_t n, F&& backward,
                     bool save_result) {
  return record_node(name, result, inputs, n, std::forward<F>(backward), std::array<SavedTensor, 0>{}, nullptr,
                     save_result);
}
}  // namespace detail

/// Records an op on the tape: `result` gets a grad_fn running `backward`. Does nothing (and
/// returns `result` unchanged) when grad mode is off or no input requires grad.
template <class F>
  requires std::is_invocable_v<F, const BackwardContext&>
Tensor record(const char* name, const Tensor& result, std::initializer_list<Tensor> inputs, F&& backward,
              bool save_result = false) {
  return detail::record_inputs(name, result, inputs.begin(), inputs.size(), std::forward<F>(backward), save_result);
}

/// Same, with tensors saved for backward (read back with ctx.saved(i), version-checked).
template <size_t N, class F>
Tensor record(const char* name, const Tensor& result, std::initializer_list<Tensor> inputs, const SaveList<N>& saved,
              F&& backward, bool save_result = false) {
  return detail::record_node(name, result, inputs.begin(), inputs.size(), std::forward<F>(backward),
                             std::array<SavedTensor, N>{}, saved.tensors.data(), save_result);
}

/// Same for a variable number of inputs (cat, stack, custom ops).
template <class F>
  requires std::is_invocable_v<F, const BackwardContext&>
Tensor record(const char* name, const Tensor& result, const std::vector<Tensor>& inputs, F&& backward,
              bool save_result = false) {
  return detail::record_inputs(name, result, inputs.data(), inputs.size(), std::forward<F>(backward), save_result);
}
/// Same for a variable number of inputs, with tensors saved for backward (save_for_backward(vector)).
template <class F>
Tensor record(const char* name, const Tensor& result, const std::vector<Tensor>& inputs, const SaveVector& saved,
              F&& backward, bool save_result = false) {
  return detail::record_node(name, result, inputs.data(), inputs.size(), std::forward<F>(backward),
                             std::vector<SavedTensor>(saved.tensors.size()), saved.tensors.data(), save_result);
}

}  // namespace tapegrad
