#pragma once
/// \file node.hpp
/// The tape's entries. Each recorded op creates one Node holding its backward function, the
/// edges to the nodes of its inputs, and what backward needs (captured by the backward lambda).
/// Nodes carry a sequence number from a thread-local counter: the engine replays them in
/// decreasing sequence order, which is the reverse of the order the tape recorded them.
///
/// Ops record themselves with `record(name, result, {inputs...}, backward)`:
///
///     Tensor mul(const Tensor& a, const Tensor& b) {
///       Tensor result = /* kernel */;
///       return record("mul", result, {a, b}, [a, b](const BackwardContext& ctx) -> Grads {
///         return {ctx.needs(0) ? sum_to(ctx.grad * b, a.shape()) : Tensor(),
///                 ctx.needs(1) ? sum_to(ctx.grad * a, b.shape()) : Tensor()};
///       });
///     }
///
/// Backward functions are written with tapegrad's own differentiable ops, so with
/// create_graph=true the backward pass is itself recorded (higher-order gradients).
#include <atomic>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {

using Grads = std::vector<Tensor>;
class Node;
namespace detail {
void attach(Node& node, const Tensor& result, const Tensor* inputs, size_t n, bool save_result);
}

/// What a backward function receives.
struct BackwardContext {
  const Tensor& grad;    ///< gradient of the loss w.r.t. the op's output
  const Tensor& result;  ///< the op's output (defined only when recorded with save_result)
  const Node& node;
  /// Whether input i needs a gradient (skip the work otherwise).
  bool needs(size_t i) const;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  Node(const char* name, uint64_t seq) : name_(name), seq_(seq) {}
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const char* name() const { return name_; }
  uint64_t sequence() const { return seq_; }
  /// One edge per input; null where the input needs no gradient.
  const std::vector<std::shared_ptr<Node>>& next() const { return next_; }
  /// Shape and dtype of the tensor this node's gradient is for.
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  bool released() const { return released_; }

  /// Computes the gradients for the inputs. Engine-internal.
  virtual Grads apply(const Tensor& grad) = 0;
  /// Frees what was saved for backward.
  virtual void release() { released_ = true; saved_result_ = Tensor(); }
  virtual bool is_accumulator() const { return false; }
  /// Bytes this node keeps for backward: its saved output plus its closure. Saved inputs share
  /// their storage with the live tensors (no copy) and are not counted.
  virtual size_t saved_bytes() const;

 protected:
  friend class Engine;
  friend void detail::attach(Node&, const Tensor&, const Tensor*, size_t, bool);
  /// The saved output, attached to this node so that create_graph can differentiate through it.
  Tensor unpack_result();

  const char* name_;
  uint64_t seq_;
  std::vector<std::shared_ptr<Node>> next_;
  Shape shape_;
  DType dtype_ = DType::f32;
  bool released_ = false;
  Tensor saved_result_;  // detached view of the output, re-attached to this node on unpack
  // engine scratch
  Tensor grad_buffer_;
  uint64_t epoch_ = 0;
};

/// A node whose backward is a callable `Grads(const BackwardContext&)`.
template <class F>
class FunctionNode final : public Node {
 public:
  FunctionNode(const char* name, uint64_t seq, F&& f) : Node(name, seq), fn_(std::move(f)) {}
  Grads apply(const Tensor& grad) override {
    Tensor result = unpack_result();
    return (*fn_)(BackwardContext{grad, result, *this});
  }
  void release() override {
    Node::release();
    fn_.reset();
  }
  size_t saved_bytes() const override { return Node::saved_bytes() + (fn_ ? sizeof(F) : 0); }

 private:
  std::optional<F> fn_;
};

// ---- grad mode -----------------------------------------------------------------------------
/// Whether ops are being recorded on this thread.
bool grad_enabled();
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
using no_grad = NoGradGuard;

/// RAII: sets grad mode to `enabled` in its scope.
class GradModeGuard {
 public:
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
/// Hooks for the profiler and anomaly mode (debug.hpp); null when off, so they cost one test.
extern thread_local void (*on_record)(const Node&, const Tensor& result);
extern thread_local void (*on_backward)(const Node&, const Grads& grads, double seconds);
extern thread_local void (*on_allocate)();
}  // namespace detail

namespace detail {
template <class F>
Tensor record_inputs(const char* name, const Tensor& result, const Tensor* inputs, size_t n, F&& backward,
                     bool save_result) {
  if (!should_record(inputs, n)) return result;
  auto node = std::make_shared<FunctionNode<std::decay_t<F>>>(name, next_sequence(), std::forward<F>(backward));
  attach(*node, result, inputs, n, save_result);
  result.impl()->grad_fn = std::move(node);
  if (on_record) on_record(*result.impl()->grad_fn, result);
  return result;
}
}  // namespace detail

/// Records an op on the tape: `result` gets a grad_fn running `backward`. Does nothing (and
/// returns `result` unchanged) when grad mode is off or no input requires grad.
template <class F>
Tensor record(const char* name, const Tensor& result, std::initializer_list<Tensor> inputs, F&& backward,
              bool save_result = false) {
  return detail::record_inputs(name, result, inputs.begin(), inputs.size(), std::forward<F>(backward), save_result);
}

/// Same for a variable number of inputs (cat, stack, custom ops).
template <class F>
Tensor record(const char* name, const Tensor& result, const std::vector<Tensor>& inputs, F&& backward,
              bool save_result = false) {
  return detail::record_inputs(name, result, inputs.data(), inputs.size(), std::forward<F>(backward), save_result);
}

}  // namespace tapegrad
