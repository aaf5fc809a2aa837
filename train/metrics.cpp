#include "train/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include "autograd/debug.hpp"
#include "autograd/functions.hpp"
#include "autograd/node.hpp"

namespace tapegrad::train {
namespace {
double ratio(int64_t num, int64_t den) { return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den); }
}  // namespace

std::vector<int64_t> predicted_classes(const Tensor& outputs) {
  NoGradGuard no_grad;
  NotAnOpScope not_an_op;
  if (outputs.defined() && outputs.dtype() == DType::i64) {
    const int64_t* p = outputs.data<int64_t>();
    return {p, p + outputs.numel()};
  }
  if (!outputs.defined() || outputs.dim() < 2 || !is_floating(outputs.dtype())) {
    throw std::invalid_argument("predicted_classes: expected scores [..., C] (at least 2-D) or int64 classes, got " +
                                (outputs.defined() ? std::string(dtype_name(outputs.dtype())) + " " +
                                                         to_string(outputs.shape())
                                                   : std::string("an undefined tensor")));
  }
  Tensor idx = argmax(outputs, outputs.dim() - 1);
  const int64_t* p = idx.data<int64_t>();
  return {p, p + idx.numel()};
}

namespace {
/// The shape targets must have: the scores' without the class axis, or the int64 outputs' own.
Shape target_shape(const Tensor& outputs) {
  const Shape& s = outputs.shape();
  return outputs.dtype() == DType::i64 ? s : Shape(s.begin(), s.end() - 1);
}

/// Throws unless `targets` are int64 of `expected` shape; `who` and `what` name the caller and the
/// outputs in the message.
void check_targets(const char* who, const Tensor& targets, const Shape& expected, const std::string& what) {
  if (!targets.defined() || targets.dtype() != DType::i64 || targets.shape() != expected)
    throw std::invalid_argument(std::string(who) + ": targets must be int64 " + to_string(expected) + " for " + what +
                                ", got " +
                                (targets.defined() ? std::string(dtype_name(targets.dtype())) + " " +
                                                         to_string(targets.shape())
                                                   : std::string("an undefined tensor")));
}

std::string describe(const Tensor& t) { return std::string(dtype_name(t.dtype())) + " outputs " + to_string(t.shape()); }
}  // namespace

double accuracy(const Tensor& outputs, const Tensor& targets) {
  std::vector<int64_t> pred = predicted_classes(outputs);
  check_targets("accuracy", targets, target_shape(outputs), describe(outputs));
  const int64_t* t = targets.data<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == t[i];
  return ratio(correct, static_cast<int64_t>(pred.size()));
}

double cross_entropy_sum(const Tensor& logits, const Tensor& targets) {
  if (!logits.defined() || logits.dim() < 2 || !is_floating(logits.dtype()))
    throw std::invalid_argument("cross_entropy_sum: expected floating logits [..., C] (at least 2-D), got " +
                                (logits.defined() ? describe(logits) : std::string("an undefined tensor")));
  check_targets("cross_entropy_sum", targets, target_shape(logits), describe(logits));
  const int64_t c = logits.size(-1), rows = targets.numel();
  const int64_t* t = targets.data<int64_t>();
  for (int64_t r = 0; r < rows; ++r)
    if (t[r] < 0 || t[r] >= c)
      throw std::invalid_argument("cross_entropy_sum: target " + std::to_string(t[r]) + " at position " +
                                  std::to_string(r) + " is outside 0.." + std::to_string(c - 1));
  auto sum = [&](const auto* x) {
    double total = 0;
    for (int64_t r = 0; r < rows; ++r, x += c) {
      double m = x[0];
      for (int64_t k = 1; k < c; ++k) m = std::max(m, static_cast<double>(x[k]));
      double z = 0;
      for (int64_t k = 0; k < c; ++k) z += std::exp(static_cast<double>(x[k]) - m);
      total += m + std::log(z) - static_cast<double>(x[t[r]]);
    }
    return total;
  };
  return logits.dtype() == DType::f32 ? sum(logits.data<float>()) : sum(logits.data<double>());
}

double perplexity(const Tensor& logits, const Tensor& targets) {
  const double total = cross_entropy_sum(logits, targets);
  if (targets.numel() == 0) throw std::invalid_argument("perplexity: no positions to score");
  return std::exp(total / static_cast<double>(targets.numel()));
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
  std::vector<int64_t> pred = predicted_classes(outputs);
  if (outputs.dtype() != DType::i64 && outputs.size(-1) != n_)
    throw std::invalid_argument("ConfusionMatrix::update: scores have " + std::to_string(outputs.size(-1)) +
                                " classes, the matrix " + std::to_string(n_));
  check_targets("ConfusionMatrix::update", targets, target_shape(outputs), describe(outputs));
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

template <class PerClass>
double ConfusionMatrix::macro(PerClass per_class) const {
  double s = 0;
  int64_t present = 0;
  for (int64_t c = 0; c < n_; ++c) {
    int64_t seen = 0;  // samples of class c, and samples predicted as c
    for (int64_t k = 0; k < n_; ++k) seen += count(c, k) + count(k, c);
    if (seen == 0) continue;
    s += (this->*per_class)(c);
    ++present;
  }
  return present == 0 ? 0.0 : s / static_cast<double>(present);
}

double ConfusionMatrix::macro_precision() const { return macro(&ConfusionMatrix::precision); }
double ConfusionMatrix::macro_recall() const { return macro(&ConfusionMatrix::recall); }
double ConfusionMatrix::macro_f1() const { return macro(&ConfusionMatrix::f1); }

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

}  // namespace tapegrad::train
