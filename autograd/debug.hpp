#pragma once
/// \file debug.hpp
/// Seeing what the tape does: a profiler (per op, per scope and module, memory, Chrome trace),
/// anomaly mode (NaN/Inf detection naming the op), and Graphviz export of a recorded graph. All are
/// off by default and cost one pointer test per op (and per allocation) when off.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// Where a profiler scope shows in the grouped tables (Profiler::grouped_rows).
enum class ScopeKind {
  user,       ///< ProfileScope("name") in user code: a level of the scope table only
  module,     ///< a module call (nn::ModuleScope), named by the module's path: a level of the scope table
  composite,  ///< a library function built from several recorded ops (attention_reference): one row of
              ///< the op table with its ops indented under it, and a level of the scope table
};

/// The two ways the profiler's rows are grouped.
enum class GroupBy {
  op,     ///< per op type; ops recorded inside a composite scope are indented under its row
  scope,  ///< the tree of scopes (modules by path, user scopes, composites) with their ops as leaves
};

/// RAII: while alive, records on this thread, per op type and per scope, the number of recorded
/// ops, forward time, backward time, bytes allocated (forward and backward) and bytes saved for
/// backward, the peak memory, and a timeline of spans for write_chrome_trace(). Results stay
/// readable after the guard is destroyed.
///
/// Attribution. An op's forward span runs from the first tensor allocation after the previous
/// boundary (a recorded op, a backward node, a scope opening or closing, the end of a NotAnOpScope)
/// to its recording, and the bytes allocated in that span are its forward bytes; allocations under
/// a NotAnOpScope do not count, and that is how the DataLoader's batches, optimizer steps, metrics
/// and evaluate/predict stay out of the ops. Other tensor-allocating work done between ops by user
/// code is attributed to the next op in the same scope. Backward time is exact per node; a node's
/// backward bytes are those allocated since the previous node finished, so they include the engine's
/// accumulation of the previous node's gradients (and, for the first node, the seed gradient). A
/// node's backward is charged to the scope its op was recorded under; a second backward through a
/// retained graph is charged at the top level of the scope table (its op row stays exact).
///
/// Memory. Every storage allocated or freed on this thread moves the profiler's live-bytes count;
/// memory().peak_bytes is the process's live bytes when the profiler started plus the highest rise
/// of that count (storages freed by other threads are not seen).
///
///     Profiler prof;
///     train_step();
///     std::cout << prof.table() << prof.table(GroupBy::scope);
///     prof.write_json("profile.json");
///     prof.write_chrome_trace("trace.json");  // chrome://tracing or ui.perfetto.dev
class Profiler {
 public:
  /// One row of a table: an op type, or in grouped rows also a scope.
  struct Row {
    std::string op;               ///< the op's name, or the scope's name in grouped rows
    int64_t count = 0;            ///< ops recorded on the tape (times a scope was entered)
    double forward_seconds = 0;   ///< total (a scope's: from opening to closing)
    int64_t backward_count = 0;   ///< backward nodes run (a scope's: of the ops inside it)
    double backward_seconds = 0;  ///< total
    int64_t saved_bytes = 0;      ///< total kept for backward
    int64_t forward_bytes = 0;    ///< total allocated by the forward (a scope's: by the ops inside it)
    int64_t backward_bytes = 0;   ///< total allocated by the backward nodes
    int depth = 0;                ///< grouped rows: the indentation level, 0 at the top
    bool scope = false;           ///< grouped rows: a scope (composite, module, user) rather than an op
    std::string path;             ///< grouped rows: the enclosing rows' names and this one's, '/'-separated
  };
  /// The memory seen during the profiled region, in bytes of tensor storage.
  struct Memory {
    int64_t start_bytes = 0;  ///< live bytes of the process when the profiler started
    int64_t peak_bytes = 0;   ///< start_bytes plus the highest rise of this thread's allocations
    int64_t end_bytes = 0;    ///< start_bytes plus this thread's allocations less its frees, at stop()
  };

  /// Keeps at most `max_trace_events` spans for write_chrome_trace() (the first ones; later spans
  /// are counted as dropped). The tables do not depend on it.
  explicit Profiler(size_t max_trace_events = 200000);
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  /// Stops recording (the destructor does it too). Scopes still open are closed.
  void stop();
  /// One row per op type over every scope, sorted by total (forward + backward) time, largest first.
  std::vector<Row> rows() const;
  /// The rows of a grouped table, parents before children. GroupBy::op: composites and ops at the
  /// top sorted by total time, a composite's parts indented below it. GroupBy::scope: scopes in the
  /// order they were first entered, each followed by its ops (by total time) and its sub-scopes;
  /// ops recorded outside every scope come at depth 0. Rows deeper than `max_depth` (when ≥ 0) are
  /// left out: scope rows include everything below them.
  std::vector<Row> grouped_rows(GroupBy by, int max_depth = -1) const;
  /// A printable table with counts, total and mean times (µs) and bytes (allocated forward and
  /// backward, saved), then the totals and the peak memory; rows as grouped_rows(by, max_depth).
  std::string table(GroupBy by = GroupBy::op, int max_depth = -1) const;
  /// {"ops": rows(), "by_op": grouped_rows(op), "by_scope": grouped_rows(scope), "memory": memory(),
  /// "dropped_trace_events": n}.
  std::string json() const;
  /// Writes json() to `path` (std::runtime_error naming the path when it cannot).
  void write_json(const std::string& path) const;
  /// The peak memory of the profiled region (see Memory).
  Memory memory() const;
  /// The timeline in the Chrome trace event format (chrome://tracing, ui.perfetto.dev): one
  /// complete event ("ph": "X", ts and dur in µs from the profiler's start) per forward op and per
  /// scope entered on thread "forward" (tid 1), and per backward node on thread "backward" (tid 2),
  /// where consecutive nodes of the same scope are wrapped in that scope's span (nodes of one scope
  /// path are merged until a forward op or scope intervenes). args: "bytes" (allocated), "saved_bytes",
  /// "seq" (the node's sequence number, shared by an op's forward and backward spans), "id" of a scope
  /// span and "parent", the id of the scope span around it. A "live bytes" counter track ("ph": "C")
  /// follows the memory.
  std::string chrome_trace() const;
  /// Writes chrome_trace() to `path` (std::runtime_error naming the path when it cannot).
  void write_chrome_trace(const std::string& path) const;

  /// What the profiler accumulates (autograd/profiler_state.hpp, internal).
  struct State;

 private:
  State* state_;
};

/// RAII, PyTorch's record_function: while alive and a Profiler runs on this thread, the ops recorded
/// and the scopes opened inside are grouped under `name` (scopes nest), and the scope is one span
/// in the trace. Backward nodes are charged to the scope their op was recorded under. Costs one
/// thread-local test when no profiler runs; a scope opened before the profiler started, or closed
/// after it stopped, records nothing.
///
///     { ProfileScope s("data augmentation"); x = augment(x); }
class ProfileScope {
 public:
  /// Opens the scope `name` (copied) of `kind` on this thread; the destructor closes it.
  explicit ProfileScope(std::string_view name, ScopeKind kind = ScopeKind::user);
  ~ProfileScope();
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  uint64_t session_ = 0;  // the profiler it was opened in; 0: none
  size_t depth_ = 0;      // its position in that profiler's stack of open scopes
};

/// Whether a Profiler runs on this thread (what module scopes test before building their path).
bool profiler_enabled();

/// RAII: work that allocates tensors between ops but is not an op (a DataLoader batch, an optimizer
/// step, metrics) runs under it, so the Profiler does not charge it to the next op's forward. Nests;
/// costs two thread-local increments when no profiler runs.
class NotAnOpScope {
 public:
  NotAnOpScope();
  ~NotAnOpScope();
  NotAnOpScope(const NotAnOpScope&) = delete;
  NotAnOpScope& operator=(const NotAnOpScope&) = delete;
};

/// Anomaly mode: every recorded op's output and every gradient computed in backward is checked
/// for NaN/Inf; the first one found throws AutogradError naming the op and the ops that produced
/// its inputs. RAII; nests.
class AnomalyMode {
 public:
  /// Sets this thread's anomaly mode to `enabled` (AnomalyMode(false) turns it off inside an outer
  /// one) until the guard is destroyed, which restores the previous mode.
  explicit AnomalyMode(bool enabled = true);
  ~AnomalyMode();
  AnomalyMode(const AnomalyMode&) = delete;
  AnomalyMode& operator=(const AnomalyMode&) = delete;

 private:
  bool prev_;
};
/// Whether anomaly mode is on for this thread (off by default).
bool anomaly_enabled();

/// The graph that produced `root`, in Graphviz DOT: one box per op (name, output shape), one
/// ellipse per leaf that requires grad (shape), edges from inputs to ops.
std::string to_dot(const Tensor& root);

}  // namespace tapegrad
