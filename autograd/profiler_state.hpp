#pragma once
/// \file profiler_state.hpp
/// Internal: what a Profiler accumulates, shared by the hooks (debug.cpp) and the outputs
/// (profiler_output.cpp). Not part of the public API.
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "autograd/debug.hpp"

/// \cond INTERNAL
namespace tapegrad {

namespace profiler_detail {

/// Totals of one op or scope row; times in nanoseconds.
struct Stats {
  int64_t count = 0, backward_count = 0;
  int64_t forward_ns = 0, backward_ns = 0;
  int64_t forward_bytes = 0, backward_bytes = 0, saved_bytes = 0;
};

/// A tree of rows: entry 0 is the (unprinted) root; children are keyed by (parent, name, is scope).
struct Tree {
  struct Entry {
    int name = -1;  // index into State::names
    int parent = -1;
    bool scope = false;
    ScopeKind kind = ScopeKind::user;
    int op_tree = 0;  // scope tree only: the op tree entry of the composite around it (0: none)
    Stats stats;
  };
  std::vector<Entry> entries;
  std::unordered_map<uint64_t, int> children;

  Tree() { entries.emplace_back(); }

  /// The child of `parent` named `name` (an op or a scope), created when new.
  int child(int parent, int name, bool scope, ScopeKind kind = ScopeKind::user) {
    const uint64_t key = (static_cast<uint64_t>(parent) << 32) | (static_cast<uint64_t>(name) << 1) | (scope ? 1 : 0);
    auto [it, inserted] = children.emplace(key, static_cast<int>(entries.size()));
    if (inserted) entries.push_back(Entry{name, parent, scope, kind, 0, {}});
    return it->second;
  }
};

/// One span of the timeline (nanoseconds from the profiler's start).
struct Event {
  enum Type : uint8_t { scope, forward, backward, memory };
  int64_t start = 0, end = 0;
  int64_t bytes = 0;  // allocated (memory: live bytes)
  int64_t saved = 0;
  uint64_t seq = 0;     // the node's sequence number (ops)
  int64_t id = -1;      // a scope span's id
  int64_t parent = -1;  // the id of the scope span around it (forward)
  int name = -1;
  int entry = 0;       // scope tree entry: the scope's own, or the op's leaf
  uint64_t epoch = 0;  // forward activity counter: backward spans merge only within one epoch
  Type type = scope;
};

}  // namespace profiler_detail

struct Profiler::State {
  using Clock = std::chrono::steady_clock;
  uint64_t session = 0;
  bool active = false;
  Clock::time_point t0;

  // names of ops and scopes, interned
  std::vector<std::string> names;
  std::unordered_map<std::string, int> name_ids;
  std::unordered_map<const char*, int> op_name_ids;  // node names are string literals

  profiler_detail::Tree scope_tree, op_tree;
  struct Open {
    int entry;
    int64_t start;
    int64_t id;
    int64_t bytes = 0, saved = 0;
  };
  std::vector<Open> open;  // the scopes open now, outermost first
  int64_t next_scope_id = 0;
  /// Recorded nodes not yet run backward: their leaves in the scope tree and in the op tree.
  std::unordered_map<uint64_t, std::pair<int, int>> pending_nodes;

  // the span of the op being recorded
  bool pending = false;
  int64_t pending_start = 0;
  int64_t pending_bytes = 0;
  uint64_t epoch = 0;

  // memory (bytes of this thread's allocations less its frees, from the start)
  int64_t start_bytes = 0, live = 0, peak = 0;

  std::vector<profiler_detail::Event> events;
  size_t max_events = 0;
  int64_t dropped = 0;

  int64_t now() const { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count(); }
  int intern(const std::string& name) {
    auto [it, inserted] = name_ids.emplace(name, static_cast<int>(names.size()));
    if (inserted) names.push_back(name);
    return it->second;
  }
  void add_event(const profiler_detail::Event& e) {
    if (events.size() < max_events)
      events.push_back(e);
    else
      ++dropped;
  }
};

}  // namespace tapegrad
/// \endcond
