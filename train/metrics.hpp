#pragma once
/// \file metrics.hpp
/// Classification metrics: accuracy and a confusion matrix with precision, recall and F1 per class
/// and macro-averaged (the unweighted mean over the classes that occur as a target or a prediction,
/// as scikit-learn's average="macro" without `labels`: a class absent from both does not count).
///
/// For class c with TP = M[c][c], FP = Σ_t≠c M[t][c], FN = Σ_p≠c M[c][p] (rows are true classes,
/// columns predictions):
///
///     precision_c = TP / (TP + FP)      recall_c = TP / (TP + FN)
///     F1_c = 2 · precision_c · recall_c / (precision_c + recall_c)
///
/// A ratio whose denominator is 0 is defined as 0 (scikit-learn's zero_division=0).
///
/// Every metric takes either one prediction per sample (scores [N, C] with int64 targets [N]) or
/// one per position of a sequence, as a language model emits them (scores [N, T, C] with int64
/// targets [N, T], or any [..., C] with [...]): each position counts as one prediction, so
/// accuracy is token accuracy, and perplexity = exp(mean token cross-entropy).
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad::train {

/// Predicted classes from `outputs`, flattened in row-major order: argmax over the last axis of
/// floating scores [..., C] (at least 2-D), or int64 class indices of any shape themselves.
/// Throws std::invalid_argument for other inputs.
std::vector<int64_t> predicted_classes(const Tensor& outputs);

/// Fraction of predictions (see predicted_classes) equal to their int64 target: targets have the
/// shape of the scores without their last axis ([N] for [N, C], [N, T] for [N, T, C]: token
/// accuracy), or the shape of int64 outputs. Throws std::invalid_argument naming both shapes when
/// they do not fit.
double accuracy(const Tensor& outputs, const Tensor& targets);

/// Σ over positions of −log softmax(logits)[target] = Σ (logsumexp(row) − row[target]),
/// accumulated in float64, for floating logits [..., C] and int64 targets [...]. Throws
/// std::invalid_argument on mismatched shapes or a target outside 0..C−1.
double cross_entropy_sum(const Tensor& logits, const Tensor& targets);

/// exp(mean token cross-entropy) = exp(cross_entropy_sum / number of positions): the perplexity
/// of a language model's logits [N, T, V] on targets [N, T] (V for a uniform guess, 1 when every
/// target has probability 1). Same errors as cross_entropy_sum.
double perplexity(const Tensor& logits, const Tensor& targets);

/// Counts of (true class, predicted class) pairs, accumulated batch by batch.
class ConfusionMatrix {
 public:
  /// Throws std::invalid_argument unless num_classes ≥ 1.
  explicit ConfusionMatrix(int64_t num_classes);

  /// Adds a batch: `outputs` are scores [..., C] or int64 classes, `targets` int64 of the shape of
  /// the predictions (as for accuracy()). Throws std::invalid_argument on a shape mismatch or a
  /// class outside 0..C-1, counting nothing.
  void update(const Tensor& outputs, const Tensor& targets);
  /// Adds one sample.
  void add(int64_t target, int64_t predicted, int64_t count = 1);
  /// Zeroes every count.
  void reset();

  /// C, the matrix is C × C.
  int64_t num_classes() const { return n_; }
  /// Samples counted so far.
  int64_t total() const;
  /// Samples of class `target` predicted as `predicted`.
  int64_t count(int64_t target, int64_t predicted) const;

  /// Σ_c M[c][c] / total (0 when empty).
  double accuracy() const;
  /// Of the samples predicted as c, the share that are c: M[c][c] / Σ_t M[t][c] (0 when none).
  double precision(int64_t c) const;
  /// Of the samples of class c, the share predicted as c: M[c][c] / Σ_p M[c][p] (0 when none).
  double recall(int64_t c) const;
  /// 2·P·R / (P + R) for class c (0 when P + R = 0).
  double f1(int64_t c) const;
  ///@{
  /// The unweighted mean of precision, recall or f1 over the classes that occur as a target or a
  /// prediction (a class with neither, e.g. missing from a validation set and never predicted, is
  /// left out: scikit-learn's rule); 0 when nothing was counted.
  double macro_precision() const;
  double macro_recall() const;
  double macro_f1() const;
  ///@}

  /// The matrix as aligned text: a header of predicted classes, one row per true class,
  /// labelled with `names` when given (one per class).
  std::string to_string(const std::vector<std::string>& names = {}) const;
  /// Rows of counts (row = true class).
  std::vector<std::vector<int64_t>> rows() const;

 private:
  void check_class(int64_t c, const char* what) const;
  /// The mean of (this->*per_class)(c) over the classes that occur (macro_precision and the others).
  template <class PerClass>
  double macro(PerClass per_class) const;
  int64_t n_;
  std::vector<int64_t> m_;  // n_ × n_, row-major
};

}  // namespace tapegrad::train
