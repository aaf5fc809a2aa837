#include "autograd/debug.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>
#include <tuple>
#include <unordered_map>

#include "autograd/node.hpp"
#include "autograd/profiler_state.hpp"
#include "autograd/storage.hpp"

namespace tapegrad {

// ---- hook dispatch: profiler and anomaly mode share the engine's hooks ---------------------------

namespace {
using profiler_detail::Event;
thread_local Profiler::State* t_profiler = nullptr;
thread_local uint64_t t_sessions = 0;  // profilers started on this thread
thread_local bool t_anomaly = false;
thread_local int t_not_an_op = 0;  // depth of NotAnOpScope

bool all_finite(const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype())) return true;
  if (t.dtype() == DType::f32) {
    const float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(p[i])) return false;
  } else {
    const double* p = t.data<double>();
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(p[i])) return false;
  }
  return true;
}

std::string producers(const Node& node) {
  std::string s;
  for (auto& e : node.next()) {
    if (!e) continue;
    s += s.empty() ? "" : ", ";
    s += e->is_accumulator() ? "a leaf" : std::string("'") + e->name() + "'";
  }
  return s.empty() ? "no recorded inputs" : s;
}

/// A boundary between spans: the next op's span starts at the next allocation.
void end_pending(Profiler::State& p) {
  p.pending = false;
  p.pending_bytes = 0;
  ++p.epoch;
}

int op_name_id(Profiler::State& p, const char* name) {
  auto it = p.op_name_ids.find(name);
  if (it != p.op_name_ids.end()) return it->second;
  const int id = p.intern(name);
  p.op_name_ids.emplace(name, id);
  return id;
}

void add_forward(profiler_detail::Stats& s, int64_t ns, int64_t bytes, int64_t saved) {
  ++s.count;
  s.forward_ns += ns;
  s.forward_bytes += bytes;
  s.saved_bytes += saved;
}

/// Adds a backward node's time and bytes to `leaf` and every row above it.
void add_backward(profiler_detail::Tree& tree, int leaf, int64_t ns, int64_t bytes) {
  for (int e = leaf; e > 0; e = tree.entries[static_cast<size_t>(e)].parent) {
    auto& s = tree.entries[static_cast<size_t>(e)].stats;
    ++s.backward_count;
    s.backward_ns += ns;
    s.backward_bytes += bytes;
  }
}

void memory_sample(Profiler::State& p, int64_t at) {
  Event m;
  m.type = Event::memory;
  m.start = m.end = at;
  m.bytes = p.start_bytes + p.live;
  p.add_event(m);
}

void profile_record(Profiler::State& p, const Node& node) {
  const int64_t end = p.now();
  const int64_t start = p.pending ? p.pending_start : end;
  const int name = op_name_id(p, node.name());
  const int scope = p.open.empty() ? 0 : p.open.back().entry;
  const int leaf = p.scope_tree.child(scope, name, false);
  const int op_leaf = p.op_tree.child(p.scope_tree.entries[static_cast<size_t>(scope)].op_tree, name, false);
  const int64_t bytes = p.pending_bytes, saved = static_cast<int64_t>(node.saved_bytes());
  add_forward(p.scope_tree.entries[static_cast<size_t>(leaf)].stats, end - start, bytes, saved);
  add_forward(p.op_tree.entries[static_cast<size_t>(op_leaf)].stats, end - start, bytes, saved);
  for (auto& o : p.open) {
    o.bytes += bytes;
    o.saved += saved;
  }
  p.pending_nodes[node.sequence()] = {leaf, op_leaf};
  Event e;
  e.type = Event::forward;
  e.start = start;
  e.end = end;
  e.bytes = bytes;
  e.saved = saved;
  e.seq = node.sequence();
  e.parent = p.open.empty() ? -1 : p.open.back().id;
  e.name = name;
  e.entry = leaf;
  e.epoch = p.epoch;
  p.add_event(e);
  memory_sample(p, end);
  end_pending(p);
}

void profile_backward(Profiler::State& p, const Node& node, double seconds) {
  const int64_t end = p.now();
  const int64_t start = std::max<int64_t>(0, end - static_cast<int64_t>(seconds * 1e9));
  const int64_t bytes = p.pending_bytes;
  const int name = op_name_id(p, node.name());
  int leaf, op_leaf;
  if (auto it = p.pending_nodes.find(node.sequence()); it != p.pending_nodes.end()) {
    std::tie(leaf, op_leaf) = it->second;
    p.pending_nodes.erase(it);
  } else {  // recorded before the profiler started, or a second backward through a retained graph
    leaf = p.scope_tree.child(0, name, false);
    op_leaf = p.op_tree.child(0, name, false);
  }
  add_backward(p.scope_tree, leaf, end - start, bytes);
  add_backward(p.op_tree, op_leaf, end - start, bytes);
  Event e;
  e.type = Event::backward;
  e.start = start;
  e.end = end;
  e.bytes = bytes;
  e.seq = node.sequence();
  e.name = name;
  e.entry = leaf;
  e.epoch = p.epoch;
  p.add_event(e);
  memory_sample(p, end);
  p.pending = false;  // allocations made by backward are not the next op's forward
  p.pending_bytes = 0;
}

void record_hook(const Node& node, const Tensor& result) {
  if (Profiler::State* p = t_profiler) profile_record(*p, node);
  if (t_anomaly && !all_finite(result))
    throw AutogradError("anomaly mode: the output of '" + std::string(node.name()) + "' (shape " +
                        to_string(result.shape()) + ") contains NaN or Inf; its inputs came from " + producers(node));
}

void backward_hook(const Node& node, const Grads& grads, double seconds) {
  if (Profiler::State* p = t_profiler) profile_backward(*p, node, seconds);
  if (t_anomaly)
    for (size_t i = 0; i < grads.size(); ++i)
      if (!all_finite(grads[i]))
        throw AutogradError("anomaly mode: the backward of '" + std::string(node.name()) +
                            "' produced NaN or Inf in the gradient for input " + std::to_string(i) + " (shape " +
                            to_string(grads[i].shape()) + "); its inputs came from " + producers(node));
}

void allocate_hook() {
  Profiler::State* p = t_profiler;
  if (p && !p->pending && t_not_an_op == 0) {
    p->pending = true;
    p->pending_start = p->now();
  }
}

void storage_hook(int64_t bytes) {
  Profiler::State* p = t_profiler;
  if (!p) return;
  p->live += bytes;
  p->peak = std::max(p->peak, p->live);
  if (bytes > 0 && t_not_an_op == 0) p->pending_bytes += bytes;
}

void update_hooks() {
  bool on = t_profiler || t_anomaly;
  detail::on_record = on ? record_hook : nullptr;
  detail::on_backward = on ? backward_hook : nullptr;
  detail::on_allocate = t_profiler ? allocate_hook : nullptr;
  detail::on_storage = t_profiler ? storage_hook : nullptr;
}

/// Closes the open scopes from position `depth` on (innermost first).
void close_scopes(Profiler::State& p, size_t depth) {
  const int64_t end = p.now();
  while (p.open.size() > depth) {
    const auto o = p.open.back();
    p.open.pop_back();
    auto& entry = p.scope_tree.entries[static_cast<size_t>(o.entry)];
    add_forward(entry.stats, end - o.start, o.bytes, o.saved);
    if (entry.kind == ScopeKind::composite)
      add_forward(p.op_tree.entries[static_cast<size_t>(entry.op_tree)].stats, end - o.start, o.bytes, o.saved);
    Event e;
    e.type = Event::scope;
    e.start = o.start;
    e.end = end;
    e.bytes = o.bytes;
    e.saved = o.saved;
    e.id = o.id;
    e.parent = p.open.empty() ? -1 : p.open.back().id;
    e.name = entry.name;
    e.entry = o.entry;
    e.epoch = p.epoch;
    p.add_event(e);
  }
  end_pending(p);
}

}  // namespace

// ---- profiler -------------------------------------------------------------------------------------

NotAnOpScope::NotAnOpScope() { ++t_not_an_op; }

NotAnOpScope::~NotAnOpScope() {
  if (--t_not_an_op == 0 && t_profiler) {
    t_profiler->pending = false;
    t_profiler->pending_bytes = 0;
  }
}

bool profiler_enabled() { return t_profiler != nullptr; }

ProfileScope::ProfileScope(std::string_view name, ScopeKind kind) {
  Profiler::State* p = t_profiler;
  if (!p) return;
  const int parent = p->open.empty() ? 0 : p->open.back().entry;
  const int id = p->intern(std::string(name));
  const size_t before = p->scope_tree.entries.size();
  const int entry = p->scope_tree.child(parent, id, true, kind);
  if (p->scope_tree.entries.size() > before) {  // new: find the composite it belongs to in the op table
    const int op_parent = p->scope_tree.entries[static_cast<size_t>(parent)].op_tree;
    p->scope_tree.entries[static_cast<size_t>(entry)].op_tree =
        kind == ScopeKind::composite ? p->op_tree.child(op_parent, id, true, kind) : op_parent;
  }
  session_ = p->session;
  depth_ = p->open.size();
  p->open.push_back({entry, p->now(), p->next_scope_id++});
  end_pending(*p);
}

ProfileScope::~ProfileScope() {
  Profiler::State* p = t_profiler;
  if (session_ == 0 || !p || p->session != session_ || p->open.size() <= depth_) return;
  close_scopes(*p, depth_);
}

Profiler::Profiler(size_t max_trace_events) : state_(new State) {
  state_->session = ++t_sessions;
  state_->t0 = State::Clock::now();
  state_->start_bytes = storage_stats().live_bytes;
  state_->max_events = max_trace_events;
  state_->active = true;
  t_profiler = state_;
  update_hooks();
}

Profiler::~Profiler() {
  stop();
  delete state_;
}

void Profiler::stop() {
  if (!state_->active) return;
  close_scopes(*state_, 0);
  state_->active = false;
  if (t_profiler == state_) t_profiler = nullptr;
  update_hooks();
}

// ---- anomaly mode ---------------------------------------------------------------------------------

AnomalyMode::AnomalyMode(bool enabled) : prev_(t_anomaly) {
  t_anomaly = enabled;
  update_hooks();
}
AnomalyMode::~AnomalyMode() {
  t_anomaly = prev_;
  update_hooks();
}
bool anomaly_enabled() { return t_anomaly; }

// ---- Graphviz export ------------------------------------------------------------------------------

std::string to_dot(const Tensor& root) {
  std::ostringstream os;
  os << "digraph tapegrad {\n  rankdir=BT;\n  node [fontname=\"monospace\"];\n";
  if (!root.defined() || !root.grad_fn()) {
    os << "  root [shape=ellipse, label=\"" << (root.defined() ? to_string(root.shape()) : "undefined") << "\"];\n}\n";
    return os.str();
  }
  std::unordered_map<const Node*, int> ids;
  std::vector<const Node*> stack{root.grad_fn().get()};
  ids[stack.back()] = 0;
  std::ostringstream edges;
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    int id = ids[n];
    if (n->is_accumulator())
      os << "  n" << id << " [shape=ellipse, style=filled, fillcolor=lightblue, label=\"leaf " << to_string(n->shape())
         << "\\nrequires_grad\"];\n";
    else
      os << "  n" << id << " [shape=box, label=\"" << n->name() << "\\n"
         << to_string(n->shape()) << " " << dtype_name(n->dtype()) << "\"];\n";
    for (auto& e : n->next()) {
      if (!e) continue;
      auto [it, inserted] = ids.emplace(e.get(), static_cast<int>(ids.size()));
      if (inserted) stack.push_back(e.get());
      edges << "  n" << it->second << " -> n" << id << ";\n";
    }
  }
  os << edges.str() << "}\n";
  return os.str();
}

}  // namespace tapegrad
