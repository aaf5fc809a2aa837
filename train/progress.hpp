#pragma once
/// \file progress.hpp
/// What fit shows while it trains: a one-line progress bar on the terminal (batches, running loss,
/// samples/s, ETA), redrawn in place, and one line per epoch:
///
///     Epoch 3/10 - 1.52s - loss: 0.2931 - accuracy: 0.9154 - val_loss: 0.3012 - val_accuracy: 0.9120
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "train/history.hpp"

namespace tapegrad::train {

/// Wall-clock seconds on the steady clock since `start` (epoch timings, the progress bar's rate).
double seconds_since(std::chrono::steady_clock::time_point start);

/// One-line terminal progress bar on standard output, redrawn in place (carriage return, erase line) at most
/// ten times a second and always at the last batch. A disabled bar prints nothing.
class ProgressBar {
 public:
  /// A bar for an epoch of `batches` batches; the clock for samples/s and ETA starts now.
  ProgressBar(bool enabled, int64_t batches);
  /// `done` batches finished, `samples` samples seen so far, `running_loss` their mean loss.
  void update(int64_t done, int64_t samples, double running_loss);
  /// Erases the bar's line (before the epoch line is printed).
  void clear();

 private:
  bool enabled_;
  int64_t batches_;
  std::chrono::steady_clock::time_point start_;
  double last_ = -1.0;
};

/// The keys of `values` in display order: loss, accuracy, the other training values (by name),
/// then the same for the "val_" ones.
std::vector<std::string> ordered_keys(const std::map<std::string, double>& values);

/// Writes "Epoch <e>/<epochs> - <seconds>s - <key>: <value> ..." (seconds with 2 decimals, values
/// with 4, keys in ordered_keys order) and std::endl to `out`.
void print_epoch_line(std::ostream& out, const EpochLog& log, int64_t epochs);

}  // namespace tapegrad::train
