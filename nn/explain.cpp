#include "nn/explain.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "autograd/engine.hpp"
#include "autograd/functions.hpp"
#include "autograd/node.hpp"

namespace tapegrad::nn {

// ---- targets ------------------------------------------------------------------------------------

Target Target::class_index(int64_t c) {
  Target t;
  t.kind_ = Kind::class_index;
  t.class_ = c;
  t.description_ = "class " + std::to_string(c);
  return t;
}

Target Target::class_indices(const Tensor& labels) {
  Target t;
  t.kind_ = Kind::class_indices;
  t.labels_ = labels;
  t.description_ = "per-sample classes";
  return t;
}

Target Target::scalar_output() {
  Target t;
  t.kind_ = Kind::scalar_output;
  t.description_ = "the output";
  return t;
}

Target Target::custom(Selector select, std::string description) {
  if (!select) throw std::invalid_argument("tapegrad::nn::Target::custom: the selector is empty");
  Target t;
  t.kind_ = Kind::custom;
  t.select_ = std::move(select);
  t.description_ = std::move(description);
  return t;
}

void Target::validate(int64_t n_samples, const std::string& who) const {
  if (kind_ == Kind::class_index && class_ < 0)
    throw std::invalid_argument(who + ": target class " + std::to_string(class_) + " is negative");
  if (kind_ != Kind::class_indices) return;
  if (!labels_.defined() || labels_.dtype() != DType::i64 || labels_.dim() != 1 || labels_.size(0) != n_samples)
    throw std::invalid_argument(
        who + ": target labels must be int64 [" + std::to_string(n_samples) + "] (one class per sample of x), got " +
        (labels_.defined() ? std::string(dtype_name(labels_.dtype())) + " " + to_string(labels_.shape())
                           : std::string("an undefined tensor")));
  const int64_t* l = labels_.data<int64_t>();
  for (int64_t i = 0; i < n_samples; ++i)
    if (l[i] < 0)
      throw std::invalid_argument(who + ": target label " + std::to_string(i) + " is negative (" +
                                  std::to_string(l[i]) + ")");
}

Tensor Target::scores(const Tensor& output, const Tensor& sample, int64_t n_samples, const std::string& who) const {
  const int64_t rows = sample.numel();
  if (!output.defined() || output.dim() < 1 || output.size(0) != rows)
    throw std::invalid_argument(
        who + ": the function returned " +
        (output.defined() ? "an output of shape " + to_string(output.shape()) : std::string("an undefined tensor")) +
        " for an input of " + std::to_string(rows) + " rows; its first dimension must be " + std::to_string(rows));
  if (!is_floating(output.dtype()))
    throw std::invalid_argument(who + ": the function's output is " + dtype_name(output.dtype()) +
                                "; attributions need a floating output");
  auto class_range_error = [&](const std::string& what) {
    return std::invalid_argument(who + ": " + what + " is out of range for an output of shape " +
                                 to_string(output.shape()) + " (classes 0.." + std::to_string(output.size(-1) - 1) +
                                 ")");
  };
  switch (kind_) {
    case Kind::class_index:
    case Kind::class_indices: {
      validate(n_samples, who);
      if (output.dim() != 2)
        throw std::invalid_argument(who + ": a class target needs an output of shape [rows, classes], got " +
                                    to_string(output.shape()) + "; use Target::custom for other outputs");
      const int64_t classes = output.size(1);
      std::vector<int64_t> index(static_cast<size_t>(rows));
      const int64_t* s = sample.data<int64_t>();
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t c = kind_ == Kind::class_index ? class_ : labels_.data<int64_t>()[s[r]];
        if (c >= classes)
          throw class_range_error(kind_ == Kind::class_index
                                      ? "target class " + std::to_string(c)
                                      : "target label " + std::to_string(c) + " (sample " + std::to_string(s[r]) + ")");
        index[static_cast<size_t>(r)] = c;
      }
      return reshape(gather(output, 1, index_tensor(index, {rows, 1})), {rows});
    }
    case Kind::scalar_output:
      if (output.dim() == 1) return output;
      if (output.dim() == 2 && output.size(1) == 1) return reshape(output, {rows});
      throw std::invalid_argument(who + ": Target::scalar_output needs an output of shape [rows] or [rows, 1], got " +
                                  to_string(output.shape()) + "; pick a class or use Target::custom");
    case Kind::custom: {
      Tensor s = select_(output, sample);
      if (!s.defined() || !is_floating(s.dtype()) || s.numel() != rows || (s.dim() != 1 && s.shape() != Shape{rows, 1}))
        throw std::invalid_argument(who + ": the target '" + description_ + "' returned " +
                                    (s.defined() ? std::string(dtype_name(s.dtype())) + " " + to_string(s.shape())
                                                 : std::string("an undefined tensor")) +
                                    "; it must return one floating score per row, shape [" + std::to_string(rows) +
                                    "]");
      return s.dim() == 1 ? s : reshape(s, {rows});
    }
  }
  throw std::logic_error("tapegrad::nn::Target: unknown kind");
}

// ---- the batched gradient every method is built on -----------------------------------------------
namespace {

void check_input(const Tensor& x, const std::string& who) {
  if (!x.defined()) throw std::invalid_argument(who + ": x is undefined");
  if (!is_floating(x.dtype()))
    throw std::invalid_argument(who + ": x is " + std::string(dtype_name(x.dtype())) +
                                "; attributions need a floating input (for token ids, attribute through the "
                                "embeddings: pass them as x and the rest of the model as the function)");
  if (x.dim() < 1 || x.size(0) < 1)
    throw std::invalid_argument(who + ": x of shape " + to_string(x.shape()) +
                                " has no samples; it must be a batch [N, ...] with N ≥ 1");
}

void check_batch_size(int64_t batch_size, const std::string& who) {
  if (batch_size < 0)
    throw std::invalid_argument(who + ": batch_size must be ≥ 0 (0: all rows at once), got " +
                                std::to_string(batch_size));
}

/// Rows [rows, ...] and the sample each belongs to: returns ∂(Σ scores)/∂rows, zeros where the
/// scores do not depend on the rows. The rows are a fresh leaf: nothing is recorded into a graph
/// the caller's tensors belong to, and grad() with respect to them alone never runs weight nodes.
Tensor row_gradients(const Forward& f, const Tensor& rows, const Tensor& sample, const Target& target,
                     int64_t n_samples, const std::string& who) {
  Tensor in = rows.detach().requires_grad_();
  GradModeGuard recording(true);
  Tensor s = target.scores(f(in), sample, n_samples, who);
  if (!s.requires_grad()) return zeros_like(in);  // the function never touched a recorded tensor
  Tensor g = grad({sum(s)}, {in}, {}, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true)[0];
  return g.defined() ? g : zeros_like(in);
}

/// The rows of x (and the sample index of each) for the flattened (sample, copy) indices [r0, r1)
/// with `copies` rows per sample: row r belongs to sample r / copies.
struct RowRange {
  Tensor sample;  // int64 [r1 − r0]
  std::vector<int64_t> copy;
};
RowRange row_range(int64_t r0, int64_t r1, int64_t copies) {
  RowRange out;
  std::vector<int64_t> s;
  for (int64_t r = r0; r < r1; ++r) {
    s.push_back(r / copies);
    out.copy.push_back(r % copies);
  }
  out.sample = index_tensor(s);
  return out;
}

/// Calls body(r0, r1) over [0, total) in chunks of batch_size (0: one chunk).
template <class Body>
void for_chunks(int64_t total, int64_t batch_size, Body&& body) {
  const int64_t step = batch_size > 0 ? batch_size : total;
  for (int64_t r0 = 0; r0 < total; r0 += step) body(r0, std::min(total, r0 + step));
}

/// Per-row scale [rows, 1, 1, ...] broadcasting against x's rows.
Tensor row_scale(const std::vector<double>& values, const Tensor& x) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = static_cast<int64_t>(values.size());
  return tensor(values, Shape(shape), x.dtype());
}

/// The model in eval mode for the scope; every submodule's own training flag restored after.
/// Flags are restored in pre-order: train(flag) on a module recurses, and its descendants' own
/// flags, set after it, win.
class EvalScope {
 public:
  explicit EvalScope(Module& m) {
    collect(m);
    m.eval();
  }
  ~EvalScope() {
    for (auto& [module, training] : modes_) module->train(training);
  }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  void collect(Module& m) {
    modes_.emplace_back(&m, m.is_training());
    for (const auto& child : m.children()) collect(*child);
  }
  std::vector<std::pair<Module*, bool>> modes_;
};

Forward as_forward(UnaryModule& model) {
  return [&model](const Tensor& x) { return model(x); };
}

/// Σ over rows of g, grouped by sample: [n_samples, ...].
Tensor sum_by_sample(const Tensor& g, const Tensor& sample, const Shape& x_shape) {
  return index_add(x_shape, 0, sample, g);
}

}  // namespace

// ---- saliency, gradient × input ----------------------------------------------------------------

namespace {
Tensor input_gradient(const Forward& f, const Tensor& x, const Target& target, const GradientOptions& options,
                      const std::string& who) {
  check_input(x, who);
  check_batch_size(options.batch_size(), who);
  const int64_t n = x.size(0);
  target.validate(n, who);
  Tensor total = zeros(x.shape(), x.dtype());
  for_chunks(n, options.batch_size(), [&](int64_t r0, int64_t r1) {
    RowRange rows = row_range(r0, r1, 1);
    Tensor xs;
    {
      NoGradGuard off;
      xs = r0 == 0 && r1 == n ? x : slice(x, 0, r0, r1);
    }
    Tensor g = row_gradients(f, xs, rows.sample, target, n, who);
    NoGradGuard off;
    total = add(total, sum_by_sample(g, rows.sample, x.shape()));
  });
  return total;
}
}  // namespace

Tensor gradient(const Forward& f, const Tensor& x, const Target& target, const GradientOptions& options) {
  return input_gradient(f, x, target, options, "tapegrad::nn::gradient");
}

Tensor saliency(const Forward& f, const Tensor& x, const Target& target, const GradientOptions& options) {
  Tensor g = input_gradient(f, x, target, options, "tapegrad::nn::saliency");
  NoGradGuard off;
  return abs(g);
}

Tensor gradient_x_input(const Forward& f, const Tensor& x, const Target& target, const GradientOptions& options) {
  Tensor g = input_gradient(f, x, target, options, "tapegrad::nn::gradient_x_input");
  NoGradGuard off;
  return mul(x.detach(), g);
}

// ---- SmoothGrad ---------------------------------------------------------------------------------

Tensor smooth_grad(const Forward& f, const Tensor& x, const Target& target, const SmoothGradOptions& options,
                   Generator& gen) {
  const std::string who = "tapegrad::nn::smooth_grad";
  check_input(x, who);
  check_batch_size(options.batch_size(), who);
  if (options.samples() < 1)
    throw std::invalid_argument(who + ": samples must be ≥ 1, got " + std::to_string(options.samples()));
  if (!(options.noise_level() >= 0) || !std::isfinite(options.noise_level()))
    throw std::invalid_argument(who + ": noise_level must be finite and ≥ 0, got " +
                                std::to_string(options.noise_level()));
  const int64_t n = x.size(0), m = options.samples();
  target.validate(n, who);

  // σᵢ = noise_level · (max xᵢ − min xᵢ)
  std::vector<double> sigma(static_cast<size_t>(n));
  {
    NoGradGuard off;
    Axes rest;
    for (int64_t d = 1; d < x.dim(); ++d) rest.push_back(d);
    std::vector<double> hi = (rest.empty() ? x : max(x, rest)).to_vector();
    std::vector<double> lo = (rest.empty() ? x : min(x, rest)).to_vector();
    for (size_t i = 0; i < sigma.size(); ++i) sigma[i] = options.noise_level() * (hi[i] - lo[i]);
  }
  Tensor total = zeros(x.shape(), x.dtype());
  for_chunks(n * m, options.batch_size() > 0 ? options.batch_size() : m, [&](int64_t r0, int64_t r1) {
    RowRange rows = row_range(r0, r1, m);
    Tensor noisy;
    {
      NoGradGuard off;
      std::vector<double> s;
      for (int64_t v : rows.sample.to_vector()) s.push_back(sigma[static_cast<size_t>(v)]);
      Tensor xs = index_select(x.detach(), 0, rows.sample);
      Shape noise_shape = xs.shape();
      noisy = add(xs, mul(randn(noise_shape, x.dtype(), gen), row_scale(s, x)));
    }
    Tensor g = row_gradients(f, noisy, rows.sample, target, n, who);
    NoGradGuard off;
    total = add(total, sum_by_sample(options.absolute() ? abs(g) : g, rows.sample, x.shape()));
  });
  NoGradGuard off;
  return div(total, static_cast<double>(m));
}

// ---- Integrated Gradients -----------------------------------------------------------------------

std::optional<double> IntegratedGradientsResult::max_relative_error() const {
  std::optional<double> worst;
  for (const auto& c : completeness)
    if (c.relative_error && (!worst || *c.relative_error > *worst)) worst = c.relative_error;
  return worst;
}

namespace {
/// F(points) per sample, float64 [n], in batches, without recording.
std::vector<double> evaluate_scores(const Forward& f, const Tensor& points, const Target& target, int64_t batch_size,
                                    const std::string& who) {
  const int64_t n = points.size(0);
  std::vector<double> out;
  NoGradGuard off;
  for_chunks(n, batch_size, [&](int64_t r0, int64_t r1) {
    RowRange rows = row_range(r0, r1, 1);
    Tensor s = target.scores(f(slice(points, 0, r0, r1)), rows.sample, n, who);
    for (double v : s.to_vector()) out.push_back(v);
  });
  return out;
}
}  // namespace

IntegratedGradientsResult integrated_gradients(const Forward& f, const Tensor& x, const Target& target,
                                               const IntegratedGradientsOptions& options) {
  const std::string who = "tapegrad::nn::integrated_gradients";
  check_input(x, who);
  check_batch_size(options.batch_size(), who);
  if (options.steps() < 1)
    throw std::invalid_argument(who + ": steps must be ≥ 1, got " + std::to_string(options.steps()));
  const Tensor& given = options.baseline();
  if (given.defined() && (given.shape() != x.shape() || given.dtype() != x.dtype()))
    throw std::invalid_argument(who + ": baseline has shape " + to_string(given.shape()) + " (" +
                                dtype_name(given.dtype()) + ") but x has " + to_string(x.shape()) + " (" +
                                dtype_name(x.dtype()) + "); they must match");
  const int64_t n = x.size(0), m = options.steps();
  target.validate(n, who);
  const int64_t batch = options.batch_size() > 0 ? options.batch_size() : m;

  Tensor input = x.detach();
  Tensor baseline = given.defined() ? given.detach() : zeros(x.shape(), x.dtype());
  Tensor delta;  // x − x′
  {
    NoGradGuard off;
    delta = sub(input, baseline);
  }
  // Σₖ ∂y/∂x at x′ + αₖ(x − x′), αₖ = (k + ½)/m, batched over (sample, step) rows.
  Tensor total = zeros(x.shape(), x.dtype());
  for_chunks(n * m, batch, [&](int64_t r0, int64_t r1) {
    RowRange rows = row_range(r0, r1, m);
    Tensor path;
    {
      NoGradGuard off;
      std::vector<double> alpha;
      for (int64_t k : rows.copy) alpha.push_back((static_cast<double>(k) + 0.5) / static_cast<double>(m));
      path = add(index_select(baseline, 0, rows.sample), mul(index_select(delta, 0, rows.sample), row_scale(alpha, x)));
    }
    Tensor g = row_gradients(f, path, rows.sample, target, n, who);
    NoGradGuard off;
    total = add(total, sum_by_sample(g, rows.sample, x.shape()));
  });

  IntegratedGradientsResult result;
  {
    NoGradGuard off;
    result.attributions = div(mul(delta, total), static_cast<double>(m));
  }
  const std::vector<double> fx = evaluate_scores(f, input, target, batch, who);
  const std::vector<double> fb = evaluate_scores(f, baseline, target, batch, who);
  result.output = tensor(fx, DType::f64);
  result.baseline_output = tensor(fb, DType::f64);
  const Tensor attr64 = result.attributions.to(DType::f64);
  const double* a = attr64.data<double>();
  const int64_t per_sample = x.numel() / n;
  for (int64_t i = 0; i < n; ++i) {
    Completeness c;
    for (int64_t j = 0; j < per_sample; ++j) c.attribution_sum += a[i * per_sample + j];
    c.output_difference = fx[static_cast<size_t>(i)] - fb[static_cast<size_t>(i)];
    c.absolute_error = std::abs(c.attribution_sum - c.output_difference);
    if (c.output_difference != 0) c.relative_error = c.absolute_error / std::abs(c.output_difference);
    result.completeness.push_back(c);
  }
  return result;
}

// ---- modules ------------------------------------------------------------------------------------

Tensor gradient(UnaryModule& model, const Tensor& x, const Target& target, const GradientOptions& options) {
  EvalScope eval(model);
  return gradient(as_forward(model), x, target, options);
}
Tensor saliency(UnaryModule& model, const Tensor& x, const Target& target, const GradientOptions& options) {
  EvalScope eval(model);
  return saliency(as_forward(model), x, target, options);
}
Tensor gradient_x_input(UnaryModule& model, const Tensor& x, const Target& target, const GradientOptions& options) {
  EvalScope eval(model);
  return gradient_x_input(as_forward(model), x, target, options);
}
Tensor smooth_grad(UnaryModule& model, const Tensor& x, const Target& target, const SmoothGradOptions& options,
                   Generator& gen) {
  EvalScope eval(model);
  return smooth_grad(as_forward(model), x, target, options, gen);
}
IntegratedGradientsResult integrated_gradients(UnaryModule& model, const Tensor& x, const Target& target,
                                               const IntegratedGradientsOptions& options) {
  EvalScope eval(model);
  return integrated_gradients(as_forward(model), x, target, options);
}

}  // namespace tapegrad::nn
