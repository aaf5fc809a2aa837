#pragma once
/// \file debug.hpp
/// Seeing what the tape does: a per-op profiler, anomaly mode (NaN/Inf detection naming the op),
/// and Graphviz export of a recorded graph. All are off by default and cost one pointer test
/// per op when off.
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// RAII: while alive, records per op type the number of recorded ops, forward time, backward time,
/// and bytes saved for backward — on this thread. Results stay readable after the guard is destroyed.
/// An op's forward time runs from the first tensor allocation after the previous recorded op (or
/// backward) to its recording; allocations under a NotAnOpScope do not count, and that is how the
/// DataLoader's batches, optimizer steps, metrics and evaluate/predict stay out of the ops' times.
/// Other tensor-allocating work done between ops by user code is attributed to the next op.
/// Backward time is exact per node.
///
///     Profiler prof;
///     train_step();
///     std::cout << prof.table();
///     prof.write_json("profile.json");
class Profiler {
 public:
  struct Row {
    std::string op;
    int64_t count = 0;           ///< ops recorded on the tape
    double forward_seconds = 0;  ///< total
    int64_t backward_count = 0;
    double backward_seconds = 0;  ///< total
    int64_t saved_bytes = 0;      ///< total kept for backward
  };
  Profiler();
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  /// Stops recording (the destructor does it too).
  void stop();
  /// Rows sorted by total (forward + backward) time, largest first.
  std::vector<Row> rows() const;
  /// A printable table with counts, total and mean times (µs) and saved bytes.
  std::string table() const;
  std::string json() const;
  void write_json(const std::string& path) const;

  struct State;

 private:
  State* state_;
};

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
  explicit AnomalyMode(bool enabled = true);
  ~AnomalyMode();
  AnomalyMode(const AnomalyMode&) = delete;
  AnomalyMode& operator=(const AnomalyMode&) = delete;

 private:
  bool prev_;
};
bool anomaly_enabled();

/// The graph that produced `root`, in Graphviz DOT: one box per op (name, output shape), one
/// ellipse per leaf that requires grad (shape), edges from inputs to ops.
std::string to_dot(const Tensor& root);

}  // namespace tapegrad
