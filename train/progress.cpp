#include "train/progress.hpp"

#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <ostream>

namespace tapegrad::train {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

ProgressBar::ProgressBar(bool enabled, int64_t batches)
    : enabled_(enabled), batches_(batches), start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(int64_t done, int64_t samples, double running_loss) {
  if (!enabled_) return;
  double elapsed = seconds_since(start_);
  if (done < batches_ && elapsed - last_ < 0.1) return;
  last_ = elapsed;
  const int width = 24;
  int filled = static_cast<int>(width * done / std::max<int64_t>(batches_, 1));
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < width) bar += '>' + std::string(static_cast<size_t>(width - filled - 1), '.');
  double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(batches_ - done) : 0.0;
  std::printf("\r\033[K%*lld/%lld [%s] loss %.4f  %.0f samples/s  ETA %.0fs", int(std::to_string(batches_).size()),
              static_cast<long long>(done), static_cast<long long>(batches_), bar.c_str(), running_loss,
              elapsed > 0 ? static_cast<double>(samples) / elapsed : 0.0, eta);
  std::fflush(stdout);
}

void ProgressBar::clear() {
  if (!enabled_) return;
  std::printf("\r\033[K");
  std::fflush(stdout);
}

std::vector<std::string> ordered_keys(const std::map<std::string, double>& values) {
  auto rank = [](const std::string& k) {
    bool val = k.rfind("val_", 0) == 0;
    std::string base = val ? k.substr(4) : k;
    return 10 * int(val) + (base == "loss" ? 0 : base == "accuracy" ? 1 : 2);
  };
  std::vector<std::string> keys;
  for (const auto& [k, v] : values) keys.push_back(k);
  std::stable_sort(keys.begin(), keys.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return keys;
}

void print_epoch_line(std::ostream& out, const EpochLog& log, int64_t epochs) {
  out << "Epoch " << log.epoch << "/" << epochs << " - " << std::fixed << std::setprecision(2) << log.seconds << "s"
      << std::setprecision(4);
  for (const auto& k : ordered_keys(log.values)) out << " - " << k << ": " << log.values.at(k);
  out << std::defaultfloat << std::endl;
}

}  // namespace tapegrad::train
