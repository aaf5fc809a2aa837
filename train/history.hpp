#pragma once
/// \file history.hpp
/// What a training run records: one EpochLog per epoch ("loss", "accuracy", "val_loss", ...) and
/// the History that fit returns, callbacks read and run states store (as History::to_json).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tapegrad::train {

/// The values of one epoch: "loss", "accuracy", "val_loss", "val_accuracy", ...
struct EpochLog {
  int64_t epoch = 0;      ///< 1-based
  double seconds = 0;     ///< wall time of the epoch (training and validation)
  int64_t steps = 0;      ///< optimizer steps in this epoch
  std::map<std::string, double> values{};  ///< by name: "loss", "accuracy", "val_loss", ...
  /// Whether the epoch recorded `key`.
  bool has(const std::string& key) const { return values.count(key) != 0; }
  /// values.at(key), throwing std::invalid_argument that lists the available keys.
  double get(const std::string& key) const;
};

/// What fit returns: one EpochLog per epoch run, and why training ended.
struct History {
  std::vector<EpochLog> epochs{};  ///< one per epoch run (a resumed run's include the earlier ones)
  int64_t steps = 0;        ///< optimizer steps in all
  std::string stop_reason{};  ///< "completed" or the reason a callback gave
  std::vector<std::string> notes{};  ///< what callbacks reported at the end (e.g. restored weights)
  /// The values of `key` over the epochs (NaN where an epoch lacks it).
  std::vector<double> series(const std::string& key) const;
  /// {"epochs": [{"epoch": 1, "seconds": .., "loss": .., ...}], "steps": .., "stop_reason": .., "notes": [..]};
  /// a value JSON has no number for is the string "inf", "-inf" or "nan" (a diverged loss stays
  /// inf through a run state, where null would read back as NaN).
  std::string to_json(int indent = 2) const;
};

}  // namespace tapegrad::train
