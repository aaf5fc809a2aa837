#pragma once
// Checks of a Profiler's Chrome trace shared by the autograd and nn tests: the format, the nesting
// of spans (every child inside its parent, no partial overlap on a thread), forward before backward.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "autograd/debug.hpp"

namespace tapegrad::test {

/// The grouped row whose path is `path` ("GPT/h.1/h.1.attn"), or null.
inline const Profiler::Row* find_row(const std::vector<Profiler::Row>& rows, const std::string& path) {
  for (auto& r : rows)
    if (r.path == path) return &r;
  return nullptr;
}

struct TraceSummary {
  int64_t forward_ops = 0, backward_ops = 0, memory_samples = 0;
  std::set<std::string> scope_names, backward_scope_names;
};

inline TraceSummary check_chrome_trace(const nlohmann::json& trace) {
  constexpr double eps = 1e-3;  // µs: ts and dur are printed from integer nanoseconds
  TraceSummary out;
  REQUIRE(trace.contains("traceEvents"));
  struct Span {
    double start, end;
    int tid;
    std::string name, cat;
    const nlohmann::json* args;
  };
  std::vector<Span> spans;
  std::map<int64_t, size_t> by_id;
  for (const auto& e : trace["traceEvents"]) {
    REQUIRE(e.contains("ph"));
    const std::string ph = e["ph"];
    if (ph == "C") {
      CHECK(e["args"]["live bytes"].get<int64_t>() >= 0);
      ++out.memory_samples;
    }
    if (ph != "X") continue;
    REQUIRE(e.contains("name"));
    REQUIRE(e.contains("ts"));
    REQUIRE(e.contains("dur"));
    CHECK(e["pid"] == 1);
    const double ts = e["ts"], dur = e["dur"];
    CHECK(ts >= 0);
    CHECK(dur >= 0);
    CHECK(e["args"].contains("bytes"));
    spans.push_back({ts, ts + dur, e["tid"].get<int>(), e["name"], e["cat"], &e["args"]});
    if (e["args"].contains("id")) {
      CHECK(by_id.emplace(e["args"]["id"].get<int64_t>(), spans.size() - 1).second);  // ids are unique
    }
  }
  // Proper nesting per thread: sorted by start (longer first), each span ends inside the open
  // spans it starts in.
  std::vector<size_t> order(spans.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Span &x = spans[a], &y = spans[b];
    if (x.tid != y.tid) return x.tid < y.tid;
    if (x.start != y.start) return x.start < y.start;
    return x.end > y.end;
  });
  std::vector<size_t> stack;
  int tid = -1;
  for (size_t i : order) {
    const Span& s = spans[i];
    if (s.tid != tid) stack.clear(), tid = s.tid;
    while (!stack.empty() && spans[stack.back()].end <= s.start + eps) stack.pop_back();
    if (!stack.empty())
      CHECK_MESSAGE(s.end <= spans[stack.back()].end + eps, (s.name + " overlaps " + spans[stack.back()].name));
    stack.push_back(i);
  }
  // Every span with a parent lies inside it, on the same thread.
  std::map<uint64_t, double> forward_end;
  for (const Span& s : spans) {
    if (s.args->contains("parent")) {
      auto it = by_id.find((*s.args)["parent"].get<int64_t>());
      REQUIRE(it != by_id.end());
      const Span& p = spans[it->second];
      CHECK(p.tid == s.tid);
      CHECK(p.start <= s.start + eps);
      CHECK(s.end <= p.end + eps);
    }
    if (s.cat == "op" && s.tid == 1) {
      ++out.forward_ops;
      forward_end[(*s.args)["seq"].get<uint64_t>()] = s.end;
    }
    if (s.cat == "op" && s.tid == 2) ++out.backward_ops;
    if (s.cat != "op") (s.tid == 1 ? out.scope_names : out.backward_scope_names).insert(s.name);
  }
  // An op's backward starts after its forward ended.
  for (const Span& s : spans) {
    if (s.cat != "op" || s.tid != 2) continue;
    auto it = forward_end.find((*s.args)["seq"].get<uint64_t>());
    if (it != forward_end.end()) CHECK(s.start + eps >= it->second);
  }
  return out;
}

}  // namespace tapegrad::test
