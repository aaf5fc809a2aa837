#include "autograd/engine.hpp"

#include <algorithm>
#include <chrono>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"

namespace tapegrad {

// ---- grad mode and the tape's sequence counter ------------------------------------------------
namespace {
thread_local bool t_grad_enabled = true;
thread_local uint64_t t_sequence = 0;
thread_local uint64_t t_epoch = 0;
}  // namespace

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

namespace detail {
thread_local void (*on_record)(const Node&, const Tensor&) = nullptr;
thread_local void (*on_backward)(const Node&, const Grads&, double) = nullptr;
thread_local void (*on_allocate)() = nullptr;
uint64_t next_sequence() { return ++t_sequence; }

bool should_record(const Tensor* inputs, size_t n) {
  if (!t_grad_enabled) return false;
  for (size_t i = 0; i < n; ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) return true;
  return false;
}
}  // namespace detail

// ---- leaves: where gradients land ---------------------------------------------------------------
namespace {

class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf) : Node("AccumulateGrad", 0), leaf_(leaf) {
    shape_ = leaf->shape;
    dtype_ = leaf->dtype;
  }
  Grads apply(const Tensor&) override { return {}; }
  void release() override {}  // holds nothing; a leaf may be reused by any later graph
  bool is_accumulator() const override { return true; }
  std::weak_ptr<TensorImpl> leaf_;
};

/// The node that receives gradients for `t`: its grad_fn, or its leaf accumulator.
std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  auto& impl = *t.impl();
  if (impl.grad_fn) return impl.grad_fn;
  if (!impl.requires_grad) return nullptr;
  if (!impl.grad_accumulator) {
    impl.grad_accumulator = std::make_shared<AccumulateGrad>(t.impl());
  }
  return impl.grad_accumulator;
}

bool uniquely_owned(const Tensor& t) { return t.impl().use_count() == 1 && t.impl()->storage.use_count() == 1; }

}  // namespace

namespace detail {
void attach(Node& node, const Tensor& result, const Tensor* inputs, size_t n, bool save_result) {
  node.next_.resize(n);
  for (size_t i = 0; i < n; ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) node.next_[i] = gradient_edge(inputs[i]);
  if (!result.defined()) return;
  auto& impl = *result.impl();
  node.shape_ = impl.shape;
  node.dtype_ = impl.dtype;
  impl.requires_grad = true;
  if (save_result) node.saved_result_ = result.detach();
}
}  // namespace detail

size_t Node::saved_bytes() const {
  return saved_result_.defined() ? static_cast<size_t>(saved_result_.numel()) * dtype_size(saved_result_.dtype()) : 0;
}

bool BackwardContext::needs(size_t i) const { return i < node.next().size() && node.next()[i] != nullptr; }

Tensor Node::unpack_result() {
  if (!saved_result_.defined()) return Tensor();
  auto impl = std::make_shared<TensorImpl>(*saved_result_.impl());
  impl->grad_fn = shared_from_this();
  impl->requires_grad = true;
  return Tensor(std::move(impl));
}

/// Destroys long chains without recursion: edges whose only owner is the dying node are
/// detached and destroyed from a work list.
Node::~Node() {
  std::vector<std::shared_ptr<Node>> stack;
  auto steal = [&stack](std::vector<std::shared_ptr<Node>>& edges) {
    for (auto& e : edges)
      if (e && e.use_count() == 1) stack.push_back(std::move(e));
    edges.clear();
  };
  steal(next_);
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    // Saved tensors may hold the next link of the chain too (their grad_fn): drop them first.
    n->release();
    steal(n->next_);
  }
}

// ---- the engine -------------------------------------------------------------------------------
class Engine {
 public:
  static std::vector<Tensor> run(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs,
                                 bool retain_graph, bool create_graph, const std::vector<Tensor>* inputs,
                                 bool allow_unused);
};

namespace {

void check_accumulable(const Node& target, const Tensor& g, const Node* producer, size_t input_nr) {
  if (g.shape() != target.shape() || g.dtype() != target.dtype()) {
    throw AutogradError(std::string("tapegrad::backward: the backward of '") +
                        (producer ? producer->name() : "output") + "' returned a gradient of shape " +
                        to_string(g.shape()) + " (" + dtype_name(g.dtype()) + ") for input " +
                        std::to_string(input_nr) + ", which has shape " + to_string(target.shape()) + " (" +
                        dtype_name(target.dtype()) + ")");
  }
}

/// buffer += g; in place when the buffer is ours alone and no graph is being built.
void accumulate(Tensor& buffer, const Tensor& g, bool create_graph) {
  if (!buffer.defined()) {
    buffer = g;
  } else if (!create_graph && uniquely_owned(buffer)) {
    kernels::add_inplace(buffer, g);
  } else {
    buffer = add(buffer, g);
  }
}

}  // namespace

std::vector<Tensor> Engine::run(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs,
                                bool retain_graph, bool create_graph, const std::vector<Tensor>* inputs,
                                bool allow_unused) {
  const char* who = inputs ? "tapegrad::grad" : "tapegrad::backward";
  if (!grad_outputs.empty() && grad_outputs.size() != outputs.size())
    throw AutogradError(std::string(who) + ": got " + std::to_string(grad_outputs.size()) +
                        " grad_outputs for " + std::to_string(outputs.size()) + " outputs");
  retain_graph = retain_graph || create_graph;

  // Roots and their seed gradients.
  std::vector<std::pair<std::shared_ptr<Node>, Tensor>> roots;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    if (!out.defined()) throw AutogradError(std::string(who) + ": output " + std::to_string(i) + " is undefined");
    if (!out.requires_grad())
      throw AutogradError(std::string(who) + ": output " + std::to_string(i) + " of shape " +
                          to_string(out.shape()) +
                          " does not require grad (no input requires grad, or it was computed under no_grad)");
    Tensor seed = grad_outputs.empty() ? Tensor() : grad_outputs[i];
    if (!seed.defined()) {
      if (out.numel() != 1)
        throw AutogradError(std::string(who) + ": output " + std::to_string(i) + " has shape " +
                            to_string(out.shape()) +
                            "; backward of a non-scalar needs an explicit gradient of that shape");
      seed = ones(out.shape(), out.dtype());
    } else if (seed.shape() != out.shape() || seed.dtype() != out.dtype()) {
      throw AutogradError(std::string(who) + ": gradient for output " + std::to_string(i) + " has shape " +
                          to_string(seed.shape()) + " (" + dtype_name(seed.dtype()) + ") but the output has " +
                          to_string(out.shape()) + " (" + dtype_name(out.dtype()) + ")");
    }
    roots.emplace_back(gradient_edge(out), seed);
  }

  std::vector<std::shared_ptr<Node>> targets;
  if (inputs) {
    for (size_t i = 0; i < inputs->size(); ++i) {
      const Tensor& in = (*inputs)[i];
      if (!in.defined() || !in.requires_grad())
        throw AutogradError(std::string(who) + ": input " + std::to_string(i) + " does not require grad");
      targets.push_back(gradient_edge(in));
    }
  }

  // Collect reachable nodes without recursion; refuse freed graphs before doing any work.
  const uint64_t epoch = ++t_epoch;
  std::vector<Node*> order;
  std::vector<Node*> stack;
  for (auto& r : roots) {
    if (r.first->epoch_ != epoch) { r.first->epoch_ = epoch; stack.push_back(r.first.get()); }
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (n->released_)
      throw AutogradError(std::string(who) + ": trying to backward through '" + n->name() +
                          "' a second time, but its saved tensors were freed by the first backward; "
                          "pass retain_graph=true to the first backward to keep them");
    order.push_back(n);
    for (auto& e : n->next_)
      if (e && e->epoch_ != epoch) { e->epoch_ = epoch; stack.push_back(e.get()); }
  }
  // Reverse tape order: consumers were recorded after their producers.
  std::sort(order.begin(), order.end(), [](Node* a, Node* b) { return a->seq_ > b->seq_; });

  // Leaves come last (sequence 0); capture buffers of targets as they are reached.
  struct Cleanup {
    std::vector<Node*>& nodes;
    ~Cleanup() { for (Node* n : nodes) n->grad_buffer_ = Tensor(); }
  } cleanup{order};

  for (auto& r : roots) accumulate(r.first->grad_buffer_, r.second, create_graph);

  std::vector<Tensor> captured(targets.size());
  GradModeGuard mode(create_graph);
  for (Node* n : order) {
    if (!n->grad_buffer_.defined()) continue;
    Tensor g = std::move(n->grad_buffer_);
    n->grad_buffer_ = Tensor();
    for (size_t t = 0; t < targets.size(); ++t)
      if (targets[t].get() == n) captured[t] = g;
    if (n->is_accumulator()) {
      if (inputs) continue;
      auto leaf = static_cast<AccumulateGrad*>(n)->leaf_.lock();
      if (!leaf) continue;
      if (!leaf->grad) {
        // Take ownership when nobody else holds the buffer; otherwise copy (it may alias).
        Tensor owned = (create_graph || uniquely_owned(g)) ? g : kernels::copy(g);
        leaf->grad = owned.impl();
      } else {
        Tensor acc(leaf->grad);
        if (create_graph) {
          leaf->grad = add(acc, g).impl();
        } else {
          kernels::add_inplace(acc, g);
        }
      }
      continue;
    }
    Grads grads;
    if (detail::on_backward) {
      auto start = std::chrono::steady_clock::now();
      grads = n->apply(g);
      detail::on_backward(*n, grads, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    } else {
      grads = n->apply(g);
    }
    g = Tensor();
    if (grads.size() != n->next_.size())
      throw AutogradError(std::string(who) + ": the backward of '" + n->name() + "' returned " +
                          std::to_string(grads.size()) + " gradients for " + std::to_string(n->next_.size()) +
                          " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      Node* next = n->next_[i].get();
      if (!next || !grads[i].defined()) continue;
      check_accumulable(*next, grads[i], n, i);
      accumulate(next->grad_buffer_, grads[i], create_graph);
    }
    if (!retain_graph) n->release();
  }

  if (inputs) {
    for (size_t t = 0; t < targets.size(); ++t) {
      if (!captured[t].defined() && !allow_unused)
        throw AutogradError(std::string(who) + ": input " + std::to_string(t) +
                            " was not used to compute the outputs (pass allow_unused=true to get an "
                            "undefined gradient instead)");
      if (captured[t].defined() && !create_graph) captured[t] = captured[t].detach();
    }
  }
  return captured;
}

void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs, bool retain_graph,
              bool create_graph) {
  Engine::run(outputs, grad_outputs, retain_graph, create_graph, nullptr, false);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph, bool create_graph,
                         bool allow_unused) {
  return Engine::run(outputs, grad_outputs, retain_graph, create_graph, &inputs, allow_unused);
}

void Tensor::backward(const Tensor& g, bool retain_graph, bool create_graph) const {
  tapegrad::backward({*this}, g.defined() ? std::vector<Tensor>{g} : std::vector<Tensor>{}, retain_graph,
                     create_graph);
}

}  // namespace tapegrad
