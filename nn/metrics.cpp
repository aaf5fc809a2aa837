#include "nn/metrics.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include "autograd/debug.hpp"
#include "autograd/functions.hpp"
#include "autograd/node.hpp"

namespace tapegrad::nn {
namespace {
double ratio(int64_t num, int64_t den) { return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den); }
}  // namespace

std::vector<int64_t> predicted_classes(const Tensor& outputs) {
  NoGradGuard no_grad;
  NotAnOpScope not_an_op;
  if (outputs.dtype() == DType::i64 && outputs.dim() == 1) {
    const int64_t* p = outputs.data<int64_t>();
    return {p, p + outputs.numel()};
  }
  if (outputs.dim() != 2 || !is_floating(outputs.dtype())) {
    throw std::invalid_argument("predicted_classes: expected scores [N, C] or int64 classes [N], got " +
                                std::string(dtype_name(outputs.dtype())) + " " + to_string(outputs.shape()));
  }
  Tensor idx = argmax(outputs, 1);
  const int64_t* p = idx.data<int64_t>();
  return {p, p + idx.numel()};
}

double accuracy(const Tensor& outputs, const Tensor& targets) {
  std::vector<int64_t> pred = predicted_classes(outputs);
  if (targets.dtype() != DType::i64 || targets.dim() != 1 || targets.size(0) != static_cast<int64_t>(pred.size()))
    throw std::invalid_argument("accuracy: targets must be int64 [" + std::to_string(pred.size()) + "], got " +
                                std::string(dtype_name(targets.dtype())) + " " + to_string(targets.shape()));
  const int64_t* t = targets.data<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == t[i];
  return ratio(correct, static_cast<int64_t>(pred.size()));
}

ConfusionMatrix::ConfusionMatrix(int64_t num_classes) : n_(num_classes) {
  if (n_ < 1) throw std::invalid_argument("ConfusionMatrix: num_classes must be >= 1, got " + std::to_string(n_));
  m_.assign(static_cast<size_t>(n_ * n_), 0);
}

void ConfusionMatrix::check_class(int64_t c, const char* what) const {
  if (c < 0 || c >= n_)
    throw std::invalid_argument(std::string("ConfusionMatrix: ") + what + " class " + std::to_string(c) +
                                " outside 0.." + std::to_string(n_ - 1));
}

void ConfusionMatrix::update(const Tensor& outputs, const Tensor& targets) {
  if (outputs.dim() == 2 && outputs.size(1) != n_)
    throw std::invalid_argument("ConfusionMatrix::update: scores have " + std::to_string(outputs.size(1)) +
                                " classes, the matrix " + std::to_string(n_));
  std::vector<int64_t> pred = predicted_classes(outputs);
  if (targets.dtype() != DType::i64 || targets.dim() != 1 || targets.size(0) != static_cast<int64_t>(pred.size()))
    throw std::invalid_argument("ConfusionMatrix::update: targets must be int64 [" + std::to_string(pred.size()) +
                                "], got " + dtype_name(targets.dtype()) + " " + tapegrad::to_string(targets.shape()));
  const int64_t* t = targets.data<int64_t>();
  for (size_t i = 0; i < pred.size(); ++i) {  // all or nothing: check the batch before counting it
    check_class(t[i], "target");
    check_class(pred[i], "predicted");
  }
  for (size_t i = 0; i < pred.size(); ++i) m_[static_cast<size_t>(t[i] * n_ + pred[i])] += 1;
}

void ConfusionMatrix::add(int64_t target, int64_t predicted, int64_t count) {
  check_class(target, "target");
  check_class(predicted, "predicted");
  m_[static_cast<size_t>(target * n_ + predicted)] += count;
}

void ConfusionMatrix::reset() { std::fill(m_.begin(), m_.end(), 0); }

int64_t ConfusionMatrix::total() const {
  int64_t s = 0;
  for (int64_t v : m_) s += v;
  return s;
}

int64_t ConfusionMatrix::count(int64_t target, int64_t predicted) const {
  check_class(target, "target");
  check_class(predicted, "predicted");
  return m_[static_cast<size_t>(target * n_ + predicted)];
}

double ConfusionMatrix::accuracy() const {
  int64_t diag = 0;
  for (int64_t c = 0; c < n_; ++c) diag += count(c, c);
  return ratio(diag, total());
}

double ConfusionMatrix::precision(int64_t c) const {
  int64_t predicted = 0;
  for (int64_t t = 0; t < n_; ++t) predicted += count(t, c);
  return ratio(count(c, c), predicted);
}

double ConfusionMatrix::recall(int64_t c) const {
  int64_t actual = 0;
  for (int64_t p = 0; p < n_; ++p) actual += count(c, p);
  return ratio(count(c, c), actual);
}

double ConfusionMatrix::f1(int64_t c) const {
  double p = precision(c), r = recall(c);
  return p + r == 0.0 ? 0.0 : 2.0 * p * r / (p + r);
}

double ConfusionMatrix::macro_precision() const {
  double s = 0;
  for (int64_t c = 0; c < n_; ++c) s += precision(c);
  return s / static_cast<double>(n_);
}

double ConfusionMatrix::macro_recall() const {
  double s = 0;
  for (int64_t c = 0; c < n_; ++c) s += recall(c);
  return s / static_cast<double>(n_);
}

double ConfusionMatrix::macro_f1() const {
  double s = 0;
  for (int64_t c = 0; c < n_; ++c) s += f1(c);
  return s / static_cast<double>(n_);
}

std::vector<std::vector<int64_t>> ConfusionMatrix::rows() const {
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(n_));
  for (int64_t t = 0; t < n_; ++t) out[static_cast<size_t>(t)].assign(m_.begin() + t * n_, m_.begin() + (t + 1) * n_);
  return out;
}

std::string ConfusionMatrix::to_string(const std::vector<std::string>& names) const {
  if (!names.empty() && static_cast<int64_t>(names.size()) != n_)
    throw std::invalid_argument("ConfusionMatrix::to_string: " + std::to_string(names.size()) + " names for " +
                                std::to_string(n_) + " classes");
  auto name = [&](int64_t c) { return names.empty() ? std::to_string(c) : names[static_cast<size_t>(c)]; };
  size_t label_w = 4, cell_w = 1;
  for (int64_t c = 0; c < n_; ++c) label_w = std::max(label_w, name(c).size());
  for (int64_t v : m_) cell_w = std::max(cell_w, std::to_string(v).size());
  for (int64_t c = 0; c < n_; ++c) cell_w = std::max(cell_w, std::to_string(c).size());
  std::ostringstream os;
  os << std::setw(static_cast<int>(label_w)) << "true" << " \\ predicted\n" << std::string(label_w, ' ');
  for (int64_t p = 0; p < n_; ++p) os << ' ' << std::setw(static_cast<int>(cell_w)) << p;
  os << '\n';
  for (int64_t t = 0; t < n_; ++t) {
    os << std::setw(static_cast<int>(label_w)) << name(t);
    for (int64_t p = 0; p < n_; ++p) os << ' ' << std::setw(static_cast<int>(cell_w)) << count(t, p);
    os << '\n';
  }
  return os.str();
}

}  // namespace tapegrad::nn
