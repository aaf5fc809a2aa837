#include "train/run_state.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "nn/serialize.hpp"

namespace tapegrad::train {
namespace {

using nn::Metadata;
using nn::NamedTensors;

constexpr const char* kFormatKey = "tapegrad.run_state";
// The key files written before the rename (when run states were called checkpoints) carry.
constexpr const char* kLegacyFormatKey = "tapegrad.checkpoint";
constexpr const char* kVersion = "2";  // 2 added callback state; 1 is read as "no callbacks"

std::runtime_error bad_run_state(const std::string& path, const std::string& what) {
  return std::runtime_error("tapegrad::train::load_run_state: '" + path + "': " + what);
}

int64_t parse_count(const std::string& path, const Metadata& meta, const std::string& key) {
  auto it = meta.find(key);
  if (it == meta.end()) throw bad_run_state(path, "metadata lacks \"" + key + "\"");
  size_t used = 0;
  int64_t v = -1;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
  }
  if (v < 0 || used != it->second.size() || it->second.empty())
    throw bad_run_state(path, "metadata \"" + key + "\" = '" + nn::detail::excerpt(it->second) + "' is not a count");
  return v;
}

// History::to_json writes NaN as null; read it back as NaN.
/// A value of History::to_json: a number, or "inf", "-inf", "nan" (null, from older run states: NaN).
double history_value(const nlohmann::json& v) {
  if (v.is_null()) return std::nan("");
  if (!v.is_string()) return v.get<double>();
  const std::string s = v.get<std::string>();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  if (s == "nan") return std::nan("");
  throw std::invalid_argument("a value \"" + nn::detail::excerpt(s, 40) + "\" where a number, \"inf\", \"-inf\" or \"nan\" belongs");
}

History parse_history(const std::string& path, const std::string& text) {
  History h;
  try {
    const auto j = nn::detail::parse_untrusted_json(text);
    for (const auto& row : j.at("epochs")) {
      EpochLog log;
      for (const auto& [key, value] : row.items()) {
        if (key == "epoch") log.epoch = value.get<int64_t>();
        else if (key == "steps") log.steps = value.get<int64_t>();
        else if (key == "seconds") log.seconds = value.get<double>();
        else log.values[key] = history_value(value);
      }
      h.epochs.push_back(std::move(log));
    }
    h.steps = j.at("steps").get<int64_t>();
    h.stop_reason = j.at("stop_reason").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw bad_run_state(path, std::string("metadata \"history\" is not a valid history (") + nn::detail::excerpt(e.what(), 160) + ")");
  } catch (const std::invalid_argument& e) {
    throw bad_run_state(path, std::string("metadata \"history\" is ") + e.what());
  }
  return h;
}

}  // namespace

void save_run_state(const RunState& state, const std::string& path) {
  NamedTensors tensors;
  for (const auto& [name, t] : state.model) tensors.emplace_back("model." + name, t);
  for (const auto& [name, t] : state.optimizer) tensors.emplace_back("optimizer." + name, t);
  for (const auto& [name, t] : state.callbacks) tensors.emplace_back("callbacks." + name, t);
  Metadata meta{{kFormatKey, kVersion},
                {"epoch", std::to_string(state.epoch)},
                {"global_step", std::to_string(state.global_step)},
                {"history", state.history.to_json(-1)}};
  for (const auto& [name, generator_state] : state.rng) meta["rng." + name] = generator_state;
  nn::save_safetensors(tensors, path, meta);
}

RunState load_run_state(const std::string& path, uint64_t max_header_bytes) {
  Metadata meta;
  NamedTensors tensors = nn::load_safetensors(path, &meta, max_header_bytes);
  auto format = meta.find(kFormatKey);
  if (format == meta.end()) format = meta.find(kLegacyFormatKey);
  if (format == meta.end())
    throw bad_run_state(path, "a safetensors file but not a run state (no \"" + std::string(kFormatKey) +
                                   "\" metadata; weights alone load with nn::load)");
  if (format->second != kVersion && format->second != "1")
    throw bad_run_state(path, "run state format version '" + nn::detail::excerpt(format->second) + "', this build reads '1' and '" + kVersion + "'");
  RunState c;
  for (auto& [name, t] : tensors) {
    if (name.rfind("model.", 0) == 0) c.model.emplace_back(name.substr(6), t);
    else if (name.rfind("optimizer.", 0) == 0) c.optimizer.emplace_back(name.substr(10), t);
    else if (name.rfind("callbacks.", 0) == 0) c.callbacks.emplace_back(name.substr(10), t);
    else throw bad_run_state(path, "tensor '" + nn::detail::excerpt(name) + "' belongs to none of the model, the optimizer and the callbacks");
  }
  c.epoch = parse_count(path, meta, "epoch");
  c.global_step = parse_count(path, meta, "global_step");
  for (const auto& [key, value] : meta)
    if (key.rfind("rng.", 0) == 0) c.rng[key.substr(4)] = value;
  auto history = meta.find("history");
  if (history == meta.end()) throw bad_run_state(path, "metadata lacks \"history\"");
  c.history = parse_history(path, history->second);
  if (static_cast<int64_t>(c.history.epochs.size()) != c.epoch)
    throw bad_run_state(path, "history has " + std::to_string(c.history.epochs.size()) + " epochs, the run state says " +
                                   std::to_string(c.epoch));
  return c;
}

}  // namespace tapegrad::train
