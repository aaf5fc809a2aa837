#include "autograd/debug.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "autograd/node.hpp"

namespace tapegrad {

// ---- hook dispatch: profiler and anomaly mode share the engine's hooks ---------------------------

namespace {
using Clock = std::chrono::steady_clock;
thread_local Profiler::State* t_profiler = nullptr;
thread_local bool t_anomaly = false;
thread_local int t_not_an_op = 0;  // depth of NotAnOpScope
}  // namespace

struct Profiler::State {
  std::map<std::string, Row> rows;
  bool pending = false;
  Clock::time_point start;
  bool active = false;
};

namespace {

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

void record_hook(const Node& node, const Tensor& result) {
  if (Profiler::State* p = t_profiler) {
    auto& row = p->rows[node.name()];
    row.op = node.name();
    ++row.count;
    if (p->pending) row.forward_seconds += std::chrono::duration<double>(Clock::now() - p->start).count();
    p->pending = false;
    row.saved_bytes += static_cast<int64_t>(node.saved_bytes());
  }
  if (t_anomaly && !all_finite(result))
    throw AutogradError("anomaly mode: the output of '" + std::string(node.name()) + "' (shape " +
                        to_string(result.shape()) + ") contains NaN or Inf; its inputs came from " + producers(node));
}

void backward_hook(const Node& node, const Grads& grads, double seconds) {
  if (Profiler::State* p = t_profiler) {
    p->pending = false;  // allocations made by backward are not the next op's forward
    auto& row = p->rows[node.name()];
    row.op = node.name();
    ++row.backward_count;
    row.backward_seconds += seconds;
  }
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
    p->start = Clock::now();
  }
}

void update_hooks() {
  bool on = t_profiler || t_anomaly;
  detail::on_record = on ? record_hook : nullptr;
  detail::on_backward = on ? backward_hook : nullptr;
  detail::on_allocate = t_profiler ? allocate_hook : nullptr;
}

}  // namespace

// ---- profiler -------------------------------------------------------------------------------------

NotAnOpScope::NotAnOpScope() { ++t_not_an_op; }

NotAnOpScope::~NotAnOpScope() {
  if (--t_not_an_op == 0 && t_profiler) t_profiler->pending = false;
}

Profiler::Profiler() : state_(new State) {
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
  state_->active = false;
  if (t_profiler == state_) t_profiler = nullptr;
  update_hooks();
}

std::vector<Profiler::Row> Profiler::rows() const {
  std::vector<Row> out;
  for (auto& [name, row] : state_->rows) out.push_back(row);
  std::sort(out.begin(), out.end(), [](const Row& a, const Row& b) {
    return a.forward_seconds + a.backward_seconds > b.forward_seconds + b.backward_seconds;
  });
  return out;
}

std::string Profiler::table() const {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-16s %9s %12s %10s %12s %10s %14s\n", "op", "count", "fwd total µs",
                "fwd mean", "bwd total µs", "bwd mean", "saved bytes");
  os << line;
  double fwd = 0, bwd = 0;
  for (const Row& r : rows()) {
    std::snprintf(line, sizeof line, "%-16s %9lld %12.1f %10.2f %12.1f %10.2f %14lld\n", r.op.c_str(),
                  static_cast<long long>(r.count), r.forward_seconds * 1e6,
                  r.count ? r.forward_seconds * 1e6 / static_cast<double>(r.count) : 0.0, r.backward_seconds * 1e6,
                  r.backward_count ? r.backward_seconds * 1e6 / static_cast<double>(r.backward_count) : 0.0,
                  static_cast<long long>(r.saved_bytes));
    os << line;
    fwd += r.forward_seconds;
    bwd += r.backward_seconds;
  }
  std::snprintf(line, sizeof line, "%-16s %9s %12.1f %10s %12.1f\n", "total", "", fwd * 1e6, "", bwd * 1e6);
  os << line;
  return os.str();
}

std::string Profiler::json() const {
  nlohmann::json j = nlohmann::json::array();
  for (const Row& r : rows())
    j.push_back({{"op", r.op},
                 {"count", r.count},
                 {"forward_seconds", r.forward_seconds},
                 {"backward_count", r.backward_count},
                 {"backward_seconds", r.backward_seconds},
                 {"saved_bytes", r.saved_bytes}});
  return j.dump(2);
}

void Profiler::write_json(const std::string& path) const {
  std::ofstream f(path);
  if (!f) throw std::runtime_error("tapegrad::Profiler::write_json: cannot open '" + path + "' for writing");
  f << json() << "\n";
  if (!f) throw std::runtime_error("tapegrad::Profiler::write_json: write to '" + path + "' failed");
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
      os << "  n" << id << " [shape=box, label=\"" << n->name() << "\\n" << to_string(n->shape()) << " "
         << dtype_name(n->dtype()) << "\"];\n";
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
