#include "autograd/gradcheck.hpp"

#include <cmath>
#include <sstream>

#include "autograd/engine.hpp"
#include "autograd/functions.hpp"
#include "autograd/node.hpp"
#include "autograd/random.hpp"

namespace tapegrad {
namespace {

std::string index_string(const Shape& shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  std::string s = "[";
  for (size_t i = 0; i < idx.size(); ++i) s += (i ? ", " : "") + std::to_string(idx[i]);
  return s + "]";
}

std::vector<int64_t> unravel(const Shape& shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  return idx;
}

/// The op's name when `out` came from one recorded op applied to the checked leaves directly.
const char* single_op(const Tensor& out) {
  const auto& node = out.grad_fn();
  if (!node) return nullptr;
  for (const auto& e : node->next())
    if (e && !e->is_accumulator()) return nullptr;
  return node->name();
}

GradcheckResult fail(GradcheckResult r, const GradcheckOptions& o) {
  r.ok = false;
  if (o.raise_exception) throw AutogradError(r.message);
  return r;
}

/// Runs fn and validates its output.
Tensor evaluate(const TensorFunction& fn, const std::vector<Tensor>& inputs) {
  Tensor out = fn(inputs);
  if (!out.defined()) throw AutogradError("gradcheck: the function returned an undefined tensor");
  if (out.dtype() != DType::f64)
    throw AutogradError(std::string("gradcheck: the function's output is ") + dtype_name(out.dtype()) +
                        "; gradcheck needs float64 throughout");
  return out;
}

/// Gradients of <out, grad_output> w.r.t. each checked input (zeros where unused), plus their shape check.
std::vector<Tensor> analytic_vjp(const Tensor& out, const std::vector<Tensor>& checked, const Tensor& grad_output,
                                 bool retain) {
  if (!out.requires_grad()) {
    std::vector<Tensor> zs;
    for (auto& t : checked) zs.push_back(zeros_like(t));
    return zs;
  }
  auto gs = grad({out}, checked, {grad_output}, retain, false, /*allow_unused=*/true);
  for (size_t i = 0; i < gs.size(); ++i) {
    if (!gs[i].defined()) gs[i] = zeros_like(checked[i]);
  }
  return gs;
}

/// Full analytic Jacobians: jac[i] is [numel(input i)] x [numel(out)], row-major in input index.
std::vector<std::vector<double>> analytic_jacobian(const TensorFunction& fn, const std::vector<Tensor>& inputs,
                                                   const std::vector<size_t>& checked_ix, std::string& shape_error) {
  std::vector<Tensor> checked;
  for (size_t i : checked_ix) checked.push_back(inputs[i]);
  Tensor out = evaluate(fn, inputs);
  const int64_t n_out = out.numel();
  std::vector<std::vector<double>> jac(checked.size());
  for (size_t i = 0; i < checked.size(); ++i) jac[i].assign(static_cast<size_t>(checked[i].numel() * n_out), 0.0);
  for (int64_t k = 0; k < n_out; ++k) {
    Tensor e = zeros(out.shape(), DType::f64);
    e.mutable_data<double>()[k] = 1.0;
    auto gs = analytic_vjp(out, checked, e, /*retain=*/true);
    for (size_t i = 0; i < checked.size(); ++i) {
      if (gs[i].shape() != checked[i].shape() || gs[i].dtype() != checked[i].dtype()) {
        shape_error = "gradcheck: the gradient for input " + std::to_string(checked_ix[i]) + " has shape " +
                      to_string(gs[i].shape()) + " (" + dtype_name(gs[i].dtype()) + "), the input has " +
                      to_string(checked[i].shape()) + " (" + dtype_name(checked[i].dtype()) + ")";
        return jac;
      }
      const double* g = gs[i].data<double>();
      for (int64_t j = 0; j < checked[i].numel(); ++j) jac[i][static_cast<size_t>(j * n_out + k)] = g[j];
    }
  }
  return jac;
}

/// Central differences, same layout as analytic_jacobian.
std::vector<std::vector<double>> numeric_jacobian(const TensorFunction& fn, const std::vector<Tensor>& inputs,
                                                  const std::vector<size_t>& checked_ix, double eps) {
  NoGradGuard guard;
  const int64_t n_out = evaluate(fn, inputs).numel();
  std::vector<std::vector<double>> jac;
  for (size_t i : checked_ix) {
    const Tensor& x = inputs[i];
    double* p = x.mutable_data<double>();
    std::vector<double> col(static_cast<size_t>(x.numel() * n_out));
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double orig = p[j];
      p[j] = orig + eps;
      Tensor plus = evaluate(fn, inputs).detach();
      std::vector<double> fp(plus.data<double>(), plus.data<double>() + n_out);
      p[j] = orig - eps;
      Tensor minus = evaluate(fn, inputs);  // may be a view of x: read it before restoring x
      for (int64_t k = 0; k < n_out; ++k)
        col[static_cast<size_t>(j * n_out + k)] = (fp[static_cast<size_t>(k)] - minus.data<double>()[k]) / (2 * eps);
      p[j] = orig;
    }
    jac.push_back(std::move(col));
  }
  return jac;
}

GradcheckResult compare(const std::vector<std::vector<double>>& analytic,
                        const std::vector<std::vector<double>>& numeric, const std::vector<Tensor>& inputs,
                        const std::vector<size_t>& checked_ix, int64_t n_out, const GradcheckOptions& o,
                        const std::string& who) {
  GradcheckResult r;
  double worst = 0;
  for (size_t i = 0; i < analytic.size(); ++i)
    for (size_t e = 0; e < analytic[i].size(); ++e) {
      double a = analytic[i][e], n = numeric[i][e];
      double excess = std::abs(a - n) - (o.atol + o.rtol * std::abs(n));
      if (std::isnan(a) != std::isnan(n)) excess = INFINITY;
      if (excess > worst || (excess > 0 && r.ok)) {
        worst = std::max(worst, excess);
        r.ok = false;
        r.input = static_cast<int>(checked_ix[i]);
        int64_t j = static_cast<int64_t>(e) / std::max<int64_t>(n_out, 1);
        r.index = unravel(inputs[checked_ix[i]].shape(), j);
        r.output_index = static_cast<int64_t>(e) % std::max<int64_t>(n_out, 1);
        r.analytic = a;
        r.numeric = n;
      }
    }
  if (!r.ok) {
    std::ostringstream os;
    os.precision(10);
    os << who << ": Jacobian mismatch for input " << r.input << " (shape "
       << to_string(inputs[static_cast<size_t>(r.input)].shape()) << ") at element "
       << index_string(inputs[static_cast<size_t>(r.input)].shape(),
                       [&] {
                         int64_t f = 0;
                         const Shape& s = inputs[static_cast<size_t>(r.input)].shape();
                         for (size_t d = 0; d < s.size(); ++d) f = f * s[d] + r.index[d];
                         return f;
                       }())
       << ", output element " << r.output_index << ": analytic " << r.analytic << " vs numeric " << r.numeric
       << " (|diff| " << std::abs(r.analytic - r.numeric) << " > atol " << o.atol << " + rtol " << o.rtol
       << "·|numeric|)";
    r.message = os.str();
  }
  return r;
}

double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += a.data<double>()[i] * b.data<double>()[i];
  return s;
}

/// Fast mode: compares uᵀ·J·v with the directional central difference, per input.
GradcheckResult fast_check(const TensorFunction& fn, const std::vector<Tensor>& inputs,
                           const std::vector<size_t>& checked_ix, const GradcheckOptions& o) {
  Generator gen(o.seed + 1234);
  Tensor out = evaluate(fn, inputs);
  std::vector<Tensor> checked;
  for (size_t i : checked_ix) checked.push_back(inputs[i]);
  for (int p = 0; p < o.fast_projections; ++p) {
    Tensor u = randn(out.shape(), DType::f64, gen);
    Tensor out_p = evaluate(fn, inputs);
    auto gs = analytic_vjp(out_p, checked, u, false);
    for (size_t c = 0; c < checked.size(); ++c) {
      const Tensor& x = checked[c];
      Tensor v = randn(x.shape(), DType::f64, gen);
      double analytic = dot(gs[c], v);
      double* px = x.mutable_data<double>();
      std::vector<double> orig(px, px + x.numel());
      double numeric;
      {
        NoGradGuard guard;
        for (int64_t j = 0; j < x.numel(); ++j) px[j] = orig[static_cast<size_t>(j)] + o.eps * v.data<double>()[j];
        double fp = dot(evaluate(fn, inputs), u);
        for (int64_t j = 0; j < x.numel(); ++j) px[j] = orig[static_cast<size_t>(j)] - o.eps * v.data<double>()[j];
        double fm = dot(evaluate(fn, inputs), u);
        std::copy(orig.begin(), orig.end(), px);
        numeric = (fp - fm) / (2 * o.eps);
      }
      if (std::abs(analytic - numeric) > o.atol + o.rtol * std::abs(numeric) || std::isnan(analytic) != std::isnan(numeric)) {
        GradcheckResult r;
        r.input = static_cast<int>(checked_ix[c]);
        r.analytic = analytic;
        r.numeric = numeric;
        std::ostringstream os;
        os.precision(10);
        os << "gradcheck (fast mode): projection uᵀJv mismatch for input " << r.input << " (shape "
           << to_string(x.shape()) << "), projection " << p << ": analytic " << analytic << " vs numeric " << numeric;
        r.message = os.str();
        return fail(r, o);
      }
    }
  }
  return {};
}

}  // namespace

GradcheckResult gradcheck(const TensorFunction& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& o) {
  std::vector<size_t> checked_ix;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) throw AutogradError("gradcheck: input " + std::to_string(i) + " is undefined");
    if (!inputs[i].requires_grad()) continue;
    if (inputs[i].dtype() != DType::f64)
      throw AutogradError("gradcheck: input " + std::to_string(i) + " is " + dtype_name(inputs[i].dtype()) +
                          "; check gradients in float64 (tensor.to(DType::f64))");
    if (!inputs[i].is_leaf()) throw AutogradError("gradcheck: input " + std::to_string(i) + " must be a leaf");
    checked_ix.push_back(i);
  }
  if (checked_ix.empty()) throw AutogradError("gradcheck: no input requires grad; nothing to check");
  GradModeGuard enable(true);

  if (o.fast_mode) return fast_check(fn, inputs, checked_ix, o);

  std::string shape_error;
  std::vector<std::vector<double>> analytic;
  try {
    analytic = analytic_jacobian(fn, inputs, checked_ix, shape_error);
  } catch (const AutogradError& e) {  // a backward returned a gradient of the wrong shape or dtype
    shape_error = std::string("gradcheck: ") + e.what();
  }
  if (!shape_error.empty()) {
    GradcheckResult r;
    r.message = shape_error;
    return fail(r, o);
  }
  Tensor probe = evaluate(fn, inputs);
  const int64_t n_out = probe.numel();
  auto numeric = numeric_jacobian(fn, inputs, checked_ix, o.eps);
  const char* op = single_op(probe);
  GradcheckResult r =
      compare(analytic, numeric, inputs, checked_ix, n_out, o, op ? "gradcheck of '" + std::string(op) + "'" : "gradcheck");
  if (!r.ok) return fail(r, o);

  // Reentrant: a second backward gives exactly the same Jacobian.
  std::string unused;
  auto again = analytic_jacobian(fn, inputs, checked_ix, unused);
  for (size_t i = 0; i < again.size(); ++i)
    for (size_t e = 0; e < again[i].size(); ++e)
      if (again[i][e] != analytic[i][e] && !(std::isnan(again[i][e]) && std::isnan(analytic[i][e]))) {
        GradcheckResult bad;
        bad.input = static_cast<int>(checked_ix[i]);
        bad.message = "gradcheck: backward is not reentrant: two runs give different gradients for input " +
                      std::to_string(checked_ix[i]) + " (" + std::to_string(analytic[i][e]) + " vs " +
                      std::to_string(again[i][e]) + ")";
        return fail(bad, o);
      }

  // A zero output gradient must give zero input gradients.
  {
    Tensor out = evaluate(fn, inputs);
    std::vector<Tensor> checked;
    for (size_t i : checked_ix) checked.push_back(inputs[i]);
    auto gs = analytic_vjp(out, checked, zeros(out.shape(), DType::f64), false);
    for (size_t i = 0; i < gs.size(); ++i)
      for (int64_t j = 0; j < gs[i].numel(); ++j)
        if (gs[i].data<double>()[j] != 0.0) {
          GradcheckResult bad;
          bad.input = static_cast<int>(checked_ix[i]);
          bad.index = unravel(gs[i].shape(), j);
          bad.analytic = gs[i].data<double>()[j];
          bad.message = "gradcheck: a zero output gradient gave a non-zero gradient " +
                        std::to_string(bad.analytic) + " for input " + std::to_string(checked_ix[i]) +
                        " at element " + index_string(gs[i].shape(), j);
          return fail(bad, o);
        }
  }
  return r;
}

GradcheckResult gradgradcheck(const TensorFunction& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& o) {
  std::vector<size_t> checked_ix;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) checked_ix.push_back(i);
  if (checked_ix.empty()) throw AutogradError("gradgradcheck: no input requires grad; nothing to check");
  Tensor probe;
  {
    GradModeGuard enable(true);
    probe = evaluate(fn, inputs);
  }
  Generator gen(o.seed + 99);
  Tensor v = randn(probe.shape(), DType::f64, gen).requires_grad_();
  const size_t n = inputs.size();

  // (inputs..., v) ↦ concat of flattened d<fn(inputs), v>/d(inputs), built with create_graph.
  TensorFunction first_order = [fn, checked_ix, n](const std::vector<Tensor>& in) {
    std::vector<Tensor> xs(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
    const Tensor& vv = in[n];
    GradModeGuard enable(true);  // the numeric pass runs under no_grad; this function needs the graph
    Tensor out = fn(xs);
    std::vector<Tensor> checked;
    for (size_t i : checked_ix) checked.push_back(xs[i]);
    std::vector<Tensor> gs;
    if (out.requires_grad()) gs = grad({out}, checked, {vv}, true, true, true);
    else gs.resize(checked.size());
    std::vector<Tensor> flat;
    for (size_t i = 0; i < checked.size(); ++i)
      flat.push_back(reshape(gs[i].defined() ? gs[i] : zeros_like(checked[i]), {-1}));
    return cat(flat, 0);
  };
  std::vector<Tensor> extended = inputs;
  extended.push_back(v);
  GradcheckResult r = gradcheck(first_order, extended, o);
  if (!r.ok) r.message = "gradgradcheck (second order): " + r.message;
  return r;
}

}  // namespace tapegrad
