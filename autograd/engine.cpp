#include "autograd/engine.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"

namespace tapegrad {

// ---- grad mode and the tape's sequence counter ------------------------------------------------
namespace {
thread_local bool t_grad_enabled = true;
// One counter for every thread: an op that consumes another op's output is recorded after it,
// whichever thread each ran on, so decreasing sequence order is a valid replay order for any graph.
std::atomic<uint64_t> g_sequence{0};
}  // namespace

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

namespace detail {
thread_local void (*on_record)(const Node&, const Tensor&) = nullptr;
thread_local void (*on_backward)(const Node&, const Grads&, double) = nullptr;
thread_local void (*on_allocate)() = nullptr;
BackwardHook set_backward_hook(BackwardHook hook) {
  BackwardHook previous = on_backward;
  on_backward = hook;
  return previous;
}
uint64_t next_sequence() { return g_sequence.fetch_add(1, std::memory_order_relaxed) + 1; }

bool should_record(const Tensor* inputs, size_t n) {
  if (!t_grad_enabled) return false;
  for (size_t i = 0; i < n; ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) return true;
  return false;
}

void save_tensors(SavedTensor* out, const Tensor* tensors, size_t n_saved, const Tensor& result,
                  const Tensor* inputs, size_t n_inputs, const char* op) {
  for (size_t k = 0; k < n_saved; ++k) {
    const Tensor& t = tensors[k];
    if (t.defined() && result.defined() && t.is_same(result))
      throw std::logic_error(std::string("tapegrad::record: '") + op +
                             "' passes its own output to save_for_backward; record it with save_result=true");
    out[k].tensor = t;
    out[k].version = t.defined() ? t.version() : 0;
    for (size_t i = 0; i < n_inputs; ++i)
      if (t.defined() && inputs[i].defined() && t.is_same(inputs[i])) {
        out[k].input = static_cast<int>(i);
        break;
      }
  }
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
  /// leaf.grad += g. Backward passes on several threads may reach the same leaf: the lock makes
  /// each addition whole (their order, hence the last bits of the sum, follows the threads).
  void accumulate(const Tensor& g, bool create_graph);
  std::weak_ptr<TensorImpl> leaf_;
  std::mutex mutex_;
};

/// The node that receives gradients for `t`: its grad_fn, or its leaf accumulator.
std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  auto& impl = *t.impl();
  if (impl.grad_fn) return impl.grad_fn;
  if (!impl.requires_grad) return nullptr;
  // Threads recording ops on the same fresh leaf (a model's parameters, shared by the threads of a
  // data-parallel step) must all get the one accumulator: its lock is what serialises their
  // additions to grad(). One process-wide mutex: taken once per leaf input of a recorded op.
  static std::mutex creation;
  std::lock_guard<std::mutex> lock(creation);
  if (!impl.grad_accumulator) impl.grad_accumulator = std::make_shared<AccumulateGrad>(t.impl());
  return impl.grad_accumulator;
}

bool uniquely_owned(const Tensor& t) { return t.impl().use_count() == 1 && t.impl()->storage.use_count() == 1; }

}  // namespace

/// A leaf's post-accumulate-grad hooks, in registration order (ids only grow).
struct LeafHooks {
  std::mutex mutex;
  std::vector<std::pair<uint64_t, PostAccumulateGradHook>> hooks;
  uint64_t next_id = 1;
};

namespace {

void AccumulateGrad::accumulate(const Tensor& g, bool create_graph) {
  auto leaf = leaf_.lock();
  if (!leaf) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!leaf->grad) {
      // Take ownership when nobody else holds the buffer; otherwise copy (it may alias another
      // leaf's gradient or a tensor the caller keeps, which a later backward's in-place addition
      // would then change too). Under create_graph the copy is a recorded clone, so grad() keeps
      // its history.
      Tensor owned = uniquely_owned(g) ? g : create_graph ? g.clone() : kernels::copy(g);
      leaf->grad = owned.impl();
    } else if (create_graph) {
      leaf->grad = add(Tensor(leaf->grad), g).impl();
    } else {
      kernels::add_inplace(Tensor(leaf->grad), g);
    }
  }
  // The engine delivers a leaf's gradient once per pass, all contributions summed: grad() is
  // complete for this pass. Hooks run outside the locks (a hook may register or remove hooks).
  if (auto hooks = leaf->post_accumulate_hooks) {
    std::vector<PostAccumulateGradHook> run;
    {
      std::lock_guard<std::mutex> lock(hooks->mutex);
      for (auto& h : hooks->hooks) run.push_back(h.second);
    }
    const Tensor t(leaf);
    for (auto& h : run) h(t);
  }
}

}  // namespace

void HookHandle::remove() {
  auto hooks = hooks_.lock();
  if (!hooks) return;
  std::lock_guard<std::mutex> lock(hooks->mutex);
  std::erase_if(hooks->hooks, [this](const auto& h) { return h.first == id_; });
}

HookHandle Tensor::register_post_accumulate_grad_hook(PostAccumulateGradHook hook) const {
  TensorImpl& impl = get("register_post_accumulate_grad_hook");
  if (impl.grad_fn)
    throw AutogradError("Tensor::register_post_accumulate_grad_hook: the tensor of shape " + tapegrad::to_string(impl.shape) +
                        " is not a leaf (it was produced by '" + impl.grad_fn->name() +
                        "'); post-accumulate hooks are for leaves, whose grad() is accumulated");
  if (!impl.requires_grad)
    throw AutogradError("Tensor::register_post_accumulate_grad_hook: the leaf of shape " + tapegrad::to_string(impl.shape) +
                        " does not require grad; call requires_grad_() first");
  if (!hook) throw std::invalid_argument("Tensor::register_post_accumulate_grad_hook: empty hook");
  if (!impl.post_accumulate_hooks) impl.post_accumulate_hooks = std::make_shared<LeafHooks>();
  auto& hooks = *impl.post_accumulate_hooks;
  std::lock_guard<std::mutex> lock(hooks.mutex);
  const uint64_t id = hooks.next_id++;
  hooks.hooks.emplace_back(id, std::move(hook));
  return HookHandle(impl.post_accumulate_hooks, id);
}

namespace detail {
Tensor accumulator_leaf(const Node& node) {
  if (!node.is_accumulator()) return Tensor();
  return Tensor(static_cast<const AccumulateGrad&>(node).leaf_.lock());
}

void attach(Node& node, const Tensor& result, const Tensor* inputs, size_t n, bool save_result) {
  node.next_.resize(n);
  for (size_t i = 0; i < n; ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) node.next_[i] = gradient_edge(inputs[i]);
  if (!result.defined()) return;
  auto& impl = *result.impl();
  node.shape_ = impl.shape;
  node.dtype_ = impl.dtype;
  impl.requires_grad = true;
  if (save_result) {
    node.saved_result_ = result.detach();
    node.result_version_ = result.version();
  }
}
}  // namespace detail

size_t Node::saved_bytes() const {
  return saved_result_.defined() ? static_cast<size_t>(saved_result_.numel()) * dtype_size(saved_result_.dtype()) : 0;
}

const Tensor& BackwardContext::saved(size_t i) const {
  if (i >= node.saved_count())
    throw std::logic_error(std::string("tapegrad: the backward of '") + node.name() + "' asked for saved tensor " +
                           std::to_string(i) + " of " + std::to_string(node.saved_count()));
  return node.saved()[i].tensor;
}

namespace {
[[noreturn]] void modified_in_place(const char* who, const Node& n, const std::string& what, const Tensor& t,
                                    uint64_t then, uint64_t now) {
  throw AutogradError(std::string(who) + ": " + what + " of '" + n.name() + "' (" + dtype_name(t.dtype()) + " " +
                      to_string(t.shape()) + ") was modified in place after '" + n.name() +
                      "' saved it for backward: it was at version " + std::to_string(then) +
                      " then and is at version " + std::to_string(now) +
                      " now. Write to it after backward, or pass the op a clone().");
}
}  // namespace

void Node::check_saved_versions(const char* who) const {
  for (size_t k = 0; k < n_saved_; ++k) {
    const SavedTensor& s = saved_[k];
    if (!s.tensor.defined() || s.tensor.version() == s.version) continue;
    modified_in_place(who, *this,
                      s.input >= 0 ? "input " + std::to_string(s.input)
                                   : "saved tensor " + std::to_string(k) + " (not an input)",
                      s.tensor, s.version, s.tensor.version());
  }
  if (saved_result_.defined() && saved_result_.version() != result_version_)
    modified_in_place(who, *this, "the output", saved_result_, result_version_, saved_result_.version());
}

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

namespace {
/// Node* -> position, open addressing with linear probing: one allocation per backward call
/// instead of one per node (std::unordered_map doubled the engine's cost per op).
class NodeIndex {
 public:
  /// Inserts `n` with value 0 if absent; returns whether it was inserted.
  bool insert(const Node* n) {
    if (2 * (size_ + 1) > keys_.size()) grow();
    size_t i = slot(n);
    if (keys_[i] == n) return false;
    keys_[i] = n;
    ++size_;
    return true;
  }
  /// The value stored for `n`, which must be present.
  size_t& operator[](const Node* n) { return values_[slot(n)]; }
  size_t at(const Node* n) const { return values_[slot(n)]; }
  bool contains(const Node* n) const { return !keys_.empty() && keys_[slot(n)] == n; }
  /// Empties the map, keeping its capacity unless it grew past `keep` slots.
  void clear(size_t keep) {
    if (keys_.size() > keep) {
      keys_ = {};
      values_ = {};
    } else if (size_) {
      std::fill(keys_.begin(), keys_.end(), nullptr);
    }
    size_ = 0;
  }

 private:
  size_t slot(const Node* n) const {
    const size_t mask = keys_.size() - 1;
    size_t i = (reinterpret_cast<uintptr_t>(n) * 0x9E3779B97F4A7C15ull >> 20) & mask;
    while (keys_[i] && keys_[i] != n) i = (i + 1) & mask;
    return i;
  }
  void grow() {
    std::vector<const Node*> old_keys = std::move(keys_);
    std::vector<size_t> old_values = std::move(values_);
    keys_.assign(std::max<size_t>(64, old_keys.size() * 2), nullptr);
    values_.assign(keys_.size(), 0);
    for (size_t k = 0; k < old_keys.size(); ++k)
      if (old_keys[k]) {
        size_t i = slot(old_keys[k]);
        keys_[i] = old_keys[k];
        values_[i] = old_values[k];
      }
  }
  std::vector<const Node*> keys_;
  std::vector<size_t> values_;
  size_t size_ = 0;
};
}  // namespace

/// The state of one backward call (PyTorch's GraphTask): the nodes it reaches, in replay order,
/// and the gradient accumulated for each. Nothing of it lives in the nodes, which graphs share:
/// nested calls (a grad() inside a backward function or a hook) and concurrent calls on other
/// threads over a shared subgraph each keep their own.
struct GraphTask {
  std::vector<Node*> order;                       // reachable nodes, consumers before producers
  NodeIndex index;                                // node -> position in order
  std::vector<Tensor> buffers;                    // gradient accumulated for order[i]
  std::vector<char> needed;                       // grad(): order[i] leads to a requested input
  bool filtered = false;                          // whether `needed` applies
  std::vector<uint32_t> pending;                  // backward(): edges into order[i] still to run
  std::vector<std::function<void()>> callbacks;   // queue_backward_callback, run at the end
  /// Whether order[pos] runs: always for backward(), only on a path to an input for grad().
  bool runs(size_t pos) const { return !filtered || needed[pos]; }
  bool is_needed(const Node* n) const { return runs(index.at(n)); }

  /// A cleared task from this thread's cache: a training loop's backward then allocates nothing
  /// for its bookkeeping. Nested calls take another one.
  static std::unique_ptr<GraphTask> acquire();
  static void recycle(std::unique_ptr<GraphTask> task);
};

namespace {
thread_local std::vector<std::unique_ptr<GraphTask>> t_task_cache;
}

std::unique_ptr<GraphTask> GraphTask::acquire() {
  if (t_task_cache.empty()) return std::make_unique<GraphTask>();
  std::unique_ptr<GraphTask> task = std::move(t_task_cache.back());
  t_task_cache.pop_back();
  return task;
}

void GraphTask::recycle(std::unique_ptr<GraphTask> task) {
  constexpr size_t kKeep = size_t(1) << 16;  // a larger graph's bookkeeping goes back to the system
  task->order.clear();
  task->buffers.clear();  // also drops any gradient a failed call left behind
  task->needed.clear();
  task->pending.clear();
  task->callbacks.clear();
  task->filtered = false;
  task->index.clear(kKeep);
  if (task->order.capacity() > kKeep) task->order = {};
  if (task->buffers.capacity() > kKeep) task->buffers = {};
  if (t_task_cache.size() < 4) t_task_cache.push_back(std::move(task));
}

namespace {
thread_local const GraphTask* t_task = nullptr;  // the task whose node is running on this thread
}

bool BackwardContext::needs(size_t i) const {
  if (i >= node.next().size() || node.next()[i] == nullptr) return false;
  return !t_task || t_task->is_needed(node.next()[i].get());
}

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

/// backward(): node `n` has run (or received no gradient): the leaves it feeds wait for one edge
/// less; a leaf waiting for none has its complete gradient delivered now.
template <class Deliver>
void release_edges(GraphTask& task, const Node* n, Deliver& deliver) {
  for (auto& e : n->next()) {
    if (!e || !e->is_accumulator()) continue;
    const size_t p = task.index.at(e.get());
    if (--task.pending[p] == 0 && task.buffers[p].defined()) deliver(p);
  }
}

/// Restores the thread's current task when a (possibly nested) backward call ends.
struct CurrentTask {
  const GraphTask* prev;
  explicit CurrentTask(const GraphTask* t) : prev(t_task) { t_task = t; }
  ~CurrentTask() { t_task = prev; }
};

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

  // Collect reachable nodes without recursion.
  struct TaskLease {  // returns the task to the cache however the call ends
    std::unique_ptr<GraphTask> task = GraphTask::acquire();
    ~TaskLease() { GraphTask::recycle(std::move(task)); }
  } lease;
  GraphTask& task = *lease.task;
  std::vector<Node*> stack;
  for (auto& r : roots)
    if (task.index.insert(r.first.get())) stack.push_back(r.first.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    task.order.push_back(n);
    for (auto& e : n->next_)
      if (e && task.index.insert(e.get())) stack.push_back(e.get());
  }
  // Reverse tape order: consumers were recorded after their producers (leaves have sequence 0).
  std::sort(task.order.begin(), task.order.end(), [](Node* a, Node* b) { return a->seq_ > b->seq_; });
  for (size_t i = 0; i < task.order.size(); ++i) task.index[task.order[i]] = i;
  task.buffers.resize(task.order.size());

  // Refuse freed graphs and modified saved tensors before any gradient is written.
  // grad(): only the nodes that lead to a requested input run (producers come later in `order`,
  // so walking it backwards sees every node's successors first).
  if (inputs) {
    task.filtered = true;
    task.needed.assign(task.order.size(), 0);
    for (auto& t : targets)
      if (task.index.contains(t.get())) task.needed[task.index[t.get()]] = 1;
    for (size_t i = task.order.size(); i-- > 0;) {
      if (task.needed[i]) continue;
      for (auto& e : task.order[i]->next_)
        if (e && task.needed[task.index[e.get()]]) {
          task.needed[i] = 1;
          break;
        }
    }
  }

  for (size_t pos = 0; pos < task.order.size(); ++pos) {
    if (!task.runs(pos)) continue;
    const Node* n = task.order[pos];
    if (n->released_)
      throw AutogradError(std::string(who) + ": trying to backward through '" + n->name() +
                          "' a second time, but its saved tensors were freed by the first backward; "
                          "pass retain_graph=true to the first backward to keep them");
    n->check_saved_versions(who);
  }

  // backward(): a leaf's gradient is complete once every node with an edge into its accumulator
  // has run. It is delivered then (grad() updated, post-accumulate hooks fired), not at the end of
  // the pass, so hooks can overlap work (DDP's all-reduce) with the rest of backward.
  if (!inputs) {
    task.pending.assign(task.order.size(), 0);
    for (const Node* n : task.order)
      for (auto& e : n->next_)
        if (e && e->is_accumulator()) ++task.pending[task.index[e.get()]];
  }
  auto deliver = [&](size_t pos) {  // accumulator order[pos]: leaf.grad += its summed gradient
    Tensor g = std::move(task.buffers[pos]);
    task.buffers[pos] = Tensor();
    static_cast<AccumulateGrad*>(task.order[pos])->accumulate(g, create_graph);
  };

  for (auto& r : roots) accumulate(task.buffers[task.index[r.first.get()]], r.second, create_graph);

  std::vector<Tensor> captured(targets.size());
  GradModeGuard mode(create_graph);
  CurrentTask current(&task);
  for (size_t pos = 0; pos < task.order.size(); ++pos) {
    Node* n = task.order[pos];
    if (!task.buffers[pos].defined() || !task.runs(pos)) {
      if (!inputs) release_edges(task, n, deliver);  // no gradient flowed through n
      continue;
    }
    if (n->is_accumulator()) {
      if (!inputs) {
        deliver(pos);  // a root leaf (nothing else feeds it)
      } else {
        for (size_t t = 0; t < targets.size(); ++t)  // a leaf asked for twice gets its gradient twice
          if (targets[t].get() == n) captured[t] = task.buffers[pos];
        task.buffers[pos] = Tensor();
      }
      continue;
    }
    Tensor g = std::move(task.buffers[pos]);
    task.buffers[pos] = Tensor();
    for (size_t t = 0; t < targets.size(); ++t)
      if (targets[t].get() == n) captured[t] = g;
    // Checked again as each node runs: a write made during this pass (a gradient accumulated into
    // a leaf's grad() that the graph saved, a post-accumulate hook stepping a parameter that a
    // later node saved) would otherwise go into this node's gradient unseen.
    n->check_saved_versions(who);
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
      accumulate(task.buffers[task.index[next]], grads[i], create_graph);
    }
    // Drop this node's handles before a leaf receives its gradient: a gradient held only by the
    // engine's buffer then becomes the leaf's grad without a copy (AccumulateGrad::accumulate).
    grads = Grads();
    if (!retain_graph) n->release();
    if (!inputs) release_edges(task, n, deliver);
  }
  // Every leaf is complete: the callbacks queued during this pass (DDP's final wait) run now.
  for (size_t k = 0; k < task.callbacks.size(); ++k) task.callbacks[k]();

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

void queue_backward_callback(std::function<void()> callback) {
  if (!t_task)
    throw AutogradError("tapegrad::queue_backward_callback: no backward pass is running on this thread (call it "
                        "from a post-accumulate-grad hook or a backward function)");
  if (!callback) throw std::invalid_argument("tapegrad::queue_backward_callback: empty callback");
  const_cast<GraphTask*>(t_task)->callbacks.push_back(std::move(callback));
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
