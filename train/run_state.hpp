#pragma once
/// \file run_state.hpp
/// Resumable training state (not to be confused with activation checkpointing,
/// autograd/checkpoint.hpp): everything a run needs to continue bitwise as if it had never
/// stopped.
///
///     train::fit(model, opt, loss, data, {.epochs = 10, .state_path = "run.state"});   // crashes in epoch 7
///     auto state = std::make_shared<train::RunState>(train::load_run_state("run.state"));   // epoch 6
///     train::fit(model, opt, loss, data, {.epochs = 10, .state_path = "run.state", .resume = state});
///
/// The resumed run ends with the same weights and the same history (bitwise, timings aside) as an
/// uninterrupted one, given the same seed, options, model, optimizer and callbacks (constructed the
/// same way, in the same order): callbacks' own state (EarlyStopping's best value, patience counter
/// and best weights, a LearningRateScheduler's epoch, ...) is in the run state too.
///
/// File format: one safetensors file (nn/serialize.hpp), so any safetensors reader can inspect it:
/// tensors "model.<name>" (Module::state_dict), "optimizer.<name>" (Optimizer::state_dict),
/// "callbacks.<i>.<name>" (a marker per callback of FitOptions::callbacks, by position and name) and
/// "callbacks.<i>.<name>.<key>" (its Callback::state_dict);
/// metadata "tapegrad.run_state" (format version "2"; version "1" files, which predate callback
/// state, still load and resume runs without callbacks; files written before the rename carry the
/// key "tapegrad.checkpoint" and load the same), "epoch", "global_step", "rng.<name>"
/// (Generator::state) and "history" (History::to_json). Saving is atomic (save_safetensors).
#include <cstdint>
#include <map>
#include <string>

#include "nn/module.hpp"
#include "nn/serialize.hpp"
#include "train/fit.hpp"

namespace tapegrad::train {

/// The state of a training run after `epoch` complete epochs.
struct RunState {
  nn::NamedTensors model{};      ///< the model's state_dict()
  nn::NamedTensors optimizer{};  ///< the optimizer's state_dict()
  int64_t epoch = 0;         ///< epochs completed
  int64_t global_step = 0;   ///< optimizer steps so far
  /// Generator states by name: "default" (default_generator()), "loader" (fit's shuffling
  /// DataLoader) and the names of FitOptions::generators (e.g. a Dropout's own generator).
  std::map<std::string, std::string> rng{};
  History history{};  ///< one EpochLog per completed epoch
  nn::NamedTensors callbacks{};  ///< "<i>.<name>" markers and "<i>.<name>.<key>" state of the run's callbacks
};

/// Writes `state` to `path` atomically (temporary file, fsync, rename): a save that fails
/// leaves the previous file intact. Throws std::runtime_error when writing fails.
void save_run_state(const RunState& state, const std::string& path);

/// Reads a run state written by save_run_state, with load_safetensors' checks and limits
/// (`max_header_bytes` bounds the JSON header, the history included). Throws std::runtime_error
/// naming the file when it is not a (valid) safetensors file or lacks a run state's metadata.
RunState load_run_state(const std::string& path, uint64_t max_header_bytes = nn::kMaxHeaderBytes);

}  // namespace tapegrad::train
