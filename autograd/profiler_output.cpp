// The Profiler's outputs: flat and grouped rows, the printed table, JSON and the Chrome trace.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "autograd/debug.hpp"
#include "autograd/profiler_state.hpp"

namespace tapegrad {

namespace {

using profiler_detail::Event;
using profiler_detail::Stats;
using profiler_detail::Tree;

Profiler::Row make_row(const std::string& name, const Stats& s) {
  Profiler::Row r;
  r.op = name;
  r.count = s.count;
  r.forward_seconds = static_cast<double>(s.forward_ns) * 1e-9;
  r.backward_count = s.backward_count;
  r.backward_seconds = static_cast<double>(s.backward_ns) * 1e-9;
  r.saved_bytes = s.saved_bytes;
  r.forward_bytes = s.forward_bytes;
  r.backward_bytes = s.backward_bytes;
  return r;
}

int64_t total_ns(const Stats& s) { return s.forward_ns + s.backward_ns; }

/// Pre-order walk of `tree` from the root's children. Scope children come in creation order when
/// `scopes_in_order`, else every child by total time; ops come before sub-scopes in the scope tree.
void walk(const Tree& tree, const std::vector<std::string>& names, bool scopes_in_order, int max_depth,
          std::vector<Profiler::Row>& out) {
  std::vector<std::vector<int>> kids(tree.entries.size());
  for (size_t i = 1; i < tree.entries.size(); ++i)
    kids[static_cast<size_t>(tree.entries[i].parent)].push_back(static_cast<int>(i));
  for (auto& k : kids)
    std::stable_sort(k.begin(), k.end(), [&](int a, int b) {
      const auto &ea = tree.entries[static_cast<size_t>(a)], &eb = tree.entries[static_cast<size_t>(b)];
      if (scopes_in_order) {
        if (ea.scope != eb.scope) return !ea.scope;  // ops first, then sub-scopes in order
        if (ea.scope) return a < b;
      }
      return total_ns(ea.stats) > total_ns(eb.stats);
    });
  struct Item {
    int entry, depth;
    std::string path;
  };
  std::vector<Item> stack;
  for (auto it = kids[0].rbegin(); it != kids[0].rend(); ++it) stack.push_back({*it, 0, ""});
  while (!stack.empty()) {
    Item item = stack.back();
    stack.pop_back();
    const auto& e = tree.entries[static_cast<size_t>(item.entry)];
    Profiler::Row r = make_row(names[static_cast<size_t>(e.name)], e.stats);
    r.depth = item.depth;
    r.scope = e.scope;
    r.path = item.path.empty() ? r.op : item.path + "/" + r.op;
    if (max_depth >= 0 && item.depth > max_depth) continue;
    out.push_back(r);
    const auto& k = kids[static_cast<size_t>(item.entry)];
    for (auto it = k.rbegin(); it != k.rend(); ++it) stack.push_back({*it, item.depth + 1, r.path});
  }
}

std::string bytes_text(int64_t b) {
  char s[32];
  if (b < 10 * 1024)
    std::snprintf(s, sizeof s, "%lld B", static_cast<long long>(b));
  else if (b < 10 * 1024 * 1024)
    std::snprintf(s, sizeof s, "%.1f KiB", static_cast<double>(b) / 1024);
  else if (b < 10LL * 1024 * 1024 * 1024)
    std::snprintf(s, sizeof s, "%.1f MiB", static_cast<double>(b) / (1024 * 1024));
  else
    std::snprintf(s, sizeof s, "%.1f GiB", static_cast<double>(b) / (1024.0 * 1024 * 1024));
  return s;
}

nlohmann::json row_json(const Profiler::Row& r, bool grouped) {
  nlohmann::json j = {{"op", r.op},
                      {"count", r.count},
                      {"forward_seconds", r.forward_seconds},
                      {"backward_count", r.backward_count},
                      {"backward_seconds", r.backward_seconds},
                      {"saved_bytes", r.saved_bytes},
                      {"forward_bytes", r.forward_bytes},
                      {"backward_bytes", r.backward_bytes}};
  if (grouped) {
    j["depth"] = r.depth;
    j["scope"] = r.scope;
    j["path"] = r.path;
  }
  return j;
}

void write_file(const std::string& path, const std::string& text, const char* who) {
  std::ofstream f(path);
  if (!f)
    throw std::runtime_error(std::string("tapegrad::Profiler::") + who + ": cannot open '" + path + "' for writing");
  f << text << "\n";
  if (!f) throw std::runtime_error(std::string("tapegrad::Profiler::") + who + ": write to '" + path + "' failed");
}

}  // namespace

std::vector<Profiler::Row> Profiler::rows() const {
  std::map<std::string, Stats> by_op;
  for (const auto& e : state_->op_tree.entries) {
    if (e.scope || e.name < 0) continue;
    Stats& s = by_op[state_->names[static_cast<size_t>(e.name)]];
    s.count += e.stats.count;
    s.backward_count += e.stats.backward_count;
    s.forward_ns += e.stats.forward_ns;
    s.backward_ns += e.stats.backward_ns;
    s.forward_bytes += e.stats.forward_bytes;
    s.backward_bytes += e.stats.backward_bytes;
    s.saved_bytes += e.stats.saved_bytes;
  }
  std::vector<Row> out;
  for (auto& [name, s] : by_op) out.push_back(make_row(name, s));
  std::stable_sort(out.begin(), out.end(), [](const Row& a, const Row& b) {
    return a.forward_seconds + a.backward_seconds > b.forward_seconds + b.backward_seconds;
  });
  return out;
}

std::vector<Profiler::Row> Profiler::grouped_rows(GroupBy by, int max_depth) const {
  std::vector<Row> out;
  if (by == GroupBy::op)
    walk(state_->op_tree, state_->names, false, max_depth, out);
  else
    walk(state_->scope_tree, state_->names, true, max_depth, out);
  return out;
}

std::string Profiler::table(GroupBy by, int max_depth) const {
  const std::vector<Row> rs = grouped_rows(by, max_depth);
  size_t width = by == GroupBy::op ? 2 : 5;
  for (const Row& r : rs) width = std::max(width, r.op.size() + 2 * static_cast<size_t>(r.depth));
  const int w = static_cast<int>(width);
  std::ostringstream os;
  char line[512];
  std::snprintf(line, sizeof line, "%-*s %8s %12s %10s %12s %10s %11s %11s %11s\n", w,
                by == GroupBy::op ? "op" : "scope", "count", "fwd total µs", "fwd mean", "bwd total µs", "bwd mean",
                "fwd alloc", "bwd alloc", "saved");
  os << line;
  for (const Row& r : rs) {
    const std::string name = std::string(2 * static_cast<size_t>(r.depth), ' ') + r.op;
    std::snprintf(line, sizeof line, "%-*s %8lld %12.1f %10.2f %12.1f %10.2f %11s %11s %11s\n", w, name.c_str(),
                  static_cast<long long>(r.count), r.forward_seconds * 1e6,
                  r.count ? r.forward_seconds * 1e6 / static_cast<double>(r.count) : 0.0, r.backward_seconds * 1e6,
                  r.backward_count ? r.backward_seconds * 1e6 / static_cast<double>(r.backward_count) : 0.0,
                  bytes_text(r.forward_bytes).c_str(), bytes_text(r.backward_bytes).c_str(),
                  bytes_text(r.saved_bytes).c_str());
    os << line;
  }
  // Totals over the ops (scopes and composites include their ops, so they are not added again).
  double fwd = 0, bwd = 0;
  int64_t fb = 0, bb = 0, sb = 0;
  for (const Row& r : rows()) {
    fwd += r.forward_seconds;
    bwd += r.backward_seconds;
    fb += r.forward_bytes;
    bb += r.backward_bytes;
    sb += r.saved_bytes;
  }
  std::snprintf(line, sizeof line, "%-*s %8s %12.1f %10s %12.1f %10s %11s %11s %11s\n", w, "total (ops)", "", fwd * 1e6,
                "", bwd * 1e6, "", bytes_text(fb).c_str(), bytes_text(bb).c_str(), bytes_text(sb).c_str());
  os << line;
  const Memory m = memory();
  os << "peak memory " << bytes_text(m.peak_bytes) << " (" << m.peak_bytes << " bytes of tensor storage; "
     << bytes_text(m.start_bytes) << " live at the start)\n";
  return os.str();
}

Profiler::Memory Profiler::memory() const {
  return {state_->start_bytes, state_->start_bytes + state_->peak, state_->start_bytes + state_->live};
}

std::string Profiler::json() const {
  nlohmann::json j;
  j["ops"] = nlohmann::json::array();
  for (const Row& r : rows()) j["ops"].push_back(row_json(r, false));
  for (auto [key, by] : {std::pair{"by_op", GroupBy::op}, std::pair{"by_scope", GroupBy::scope}}) {
    j[key] = nlohmann::json::array();
    for (const Row& r : grouped_rows(by)) j[key].push_back(row_json(r, true));
  }
  const Memory m = memory();
  j["memory"] = {{"start_bytes", m.start_bytes}, {"peak_bytes", m.peak_bytes}, {"end_bytes", m.end_bytes}};
  j["dropped_trace_events"] = state_->dropped;
  return j.dump(2);
}

void Profiler::write_json(const std::string& path) const { write_file(path, json(), "write_json"); }

namespace {

constexpr int kForwardTid = 1, kBackwardTid = 2;

nlohmann::json span(const std::string& name, const char* cat, int tid, int64_t start, int64_t end) {
  return {{"name", name},
          {"cat", cat},
          {"ph", "X"},
          {"pid", 1},
          {"tid", tid},
          {"ts", static_cast<double>(start) / 1e3},
          {"dur", static_cast<double>(end - start) / 1e3}};
}

const char* kind_name(ScopeKind k) {
  switch (k) {
    case ScopeKind::module:
      return "module";
    case ScopeKind::composite:
      return "composite";
    default:
      return "scope";
  }
}

}  // namespace

std::string Profiler::chrome_trace() const {
  const State& p = *state_;
  std::vector<Event> events = p.events;
  std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return a.start != b.start ? a.start < b.start : a.end > b.end;  // parents before children
  });
  nlohmann::json trace = nlohmann::json::array();
  trace.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 1}, {"args", {{"name", "tapegrad"}}}});
  for (auto [tid, name] : {std::pair{kForwardTid, "forward"}, std::pair{kBackwardTid, "backward"}})
    trace.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", tid}, {"args", {{"name", name}}}});
  auto name_of = [&](const Event& e) { return p.names[static_cast<size_t>(e.name)]; };

  // Backward scopes: the scope path of each top-level node (one not inside another node's span, as a
  // node run by a nested backward is), with consecutive nodes of a common path prefix merged.
  struct OpenSpan {
    int entry;
    int64_t start, end, bytes, id;
  };
  std::vector<OpenSpan> open;
  int64_t next_id = p.next_scope_id;
  uint64_t epoch = 0;
  int64_t top_end = -1;
  auto close_to = [&](size_t keep) {
    while (open.size() > keep) {
      const OpenSpan o = open.back();
      open.pop_back();
      const auto& entry = p.scope_tree.entries[static_cast<size_t>(o.entry)];
      nlohmann::json s =
          span(p.names[static_cast<size_t>(entry.name)], kind_name(entry.kind), kBackwardTid, o.start, o.end);
      s["args"] = {{"bytes", o.bytes}, {"id", o.id}};
      if (!open.empty()) s["args"]["parent"] = open.back().id;
      trace.push_back(s);
    }
  };

  for (const Event& e : events) {
    switch (e.type) {
      case Event::memory:
        trace.push_back({{"name", "memory"},
                         {"ph", "C"},
                         {"pid", 1},
                         {"ts", static_cast<double>(e.start) / 1e3},
                         {"args", {{"live bytes", e.bytes}}}});
        break;
      case Event::scope:
      case Event::forward: {
        const bool scope = e.type == Event::scope;
        const char* cat = scope ? kind_name(p.scope_tree.entries[static_cast<size_t>(e.entry)].kind) : "op";
        nlohmann::json s = span(name_of(e), cat, kForwardTid, e.start, e.end);
        s["args"] = {{"bytes", e.bytes}, {"saved_bytes", e.saved}};
        if (scope)
          s["args"]["id"] = e.id;
        else
          s["args"]["seq"] = e.seq;
        if (e.parent >= 0) s["args"]["parent"] = e.parent;
        trace.push_back(s);
        break;
      }
      case Event::backward: {
        nlohmann::json s = span(name_of(e), "op", kBackwardTid, e.start, e.end);
        s["args"] = {{"bytes", e.bytes}, {"seq", e.seq}};
        if (e.start >= top_end) {  // a top-level node: place it in its scopes
          top_end = e.end;
          std::vector<int> chain;  // the scopes around the node, outermost first
          for (int a = p.scope_tree.entries[static_cast<size_t>(e.entry)].parent; a > 0;
               a = p.scope_tree.entries[static_cast<size_t>(a)].parent)
            chain.insert(chain.begin(), a);
          size_t keep = 0;
          if (e.epoch == epoch)
            while (keep < open.size() && keep < chain.size() && open[keep].entry == chain[keep]) ++keep;
          close_to(keep);
          epoch = e.epoch;
          for (size_t i = keep; i < chain.size(); ++i) open.push_back({chain[i], e.start, e.end, 0, next_id++});
          for (auto& o : open) {
            o.end = e.end;
            o.bytes += e.bytes;
          }
          if (!open.empty()) s["args"]["parent"] = open.back().id;
        }
        trace.push_back(s);
        break;
      }
    }
  }
  close_to(0);
  nlohmann::json j = {{"traceEvents", trace},
                      {"displayTimeUnit", "ms"},
                      {"otherData", {{"dropped_events", p.dropped}, {"peak_bytes", memory().peak_bytes}}}};
  return j.dump();
}

void Profiler::write_chrome_trace(const std::string& path) const {
  write_file(path, chrome_trace(), "write_chrome_trace");
}

}  // namespace tapegrad
