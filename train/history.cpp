#include "train/history.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace tapegrad::train {

double EpochLog::get(const std::string& key) const {
  auto it = values.find(key);
  if (it != values.end()) return it->second;
  std::string keys;
  for (const auto& [k, v] : values) keys += (keys.empty() ? "" : ", ") + k;
  throw std::invalid_argument("epoch " + std::to_string(epoch) + " has no value '" + key + "' (it has: " + keys + ")");
}

std::vector<double> History::series(const std::string& key) const {
  std::vector<double> out;
  for (const auto& e : epochs) out.push_back(e.has(key) ? e.values.at(key) : std::nan(""));
  return out;
}

std::string History::to_json(int indent) const {
  nlohmann::json j;
  j["epochs"] = nlohmann::json::array();
  for (const auto& e : epochs) {
    nlohmann::json row = {{"epoch", e.epoch}, {"seconds", e.seconds}, {"steps", e.steps}};
    for (const auto& [k, v] : e.values) {
      if (std::isfinite(v)) row[k] = v;
      else row[k] = std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    }
    j["epochs"].push_back(row);
  }
  j["steps"] = steps;
  j["stop_reason"] = stop_reason;
  j["notes"] = notes;
  return j.dump(indent);
}

}  // namespace tapegrad::train
