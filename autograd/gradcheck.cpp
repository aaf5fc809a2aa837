#include "autograd/gradcheck.hpp"

#include <cmath>
#include <cstring>
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


// ---- localize: every recorded node checked on its own inputs -----------------------------------

/// The nodes one call of `fn` recorded on this thread, in forward order, and their outputs.
struct RecordedRun {
  std::vector<Tensor> results;               ///< each node's output, as recorded
  std::vector<std::shared_ptr<Node>> nodes;  ///< each node (its output's grad_fn when recorded)
  std::function<void(size_t position, const Tensor& result)> on_node;  ///< called after each record
};

/// Fills a RecordedRun while in scope, through detail::on_record; the hook installed before (the
/// profiler's, anomaly mode's) still runs first.
class Recording {
 public:
  explicit Recording(RecordedRun& run) : prev_hook_(detail::on_record) {
    if (prev_hook_ == &Recording::hook)
      throw AutogradError("gradcheck (localize): fn runs another localizing gradcheck; they cannot nest");
    t_run = &run;
    t_prev_hook = prev_hook_;
    detail::on_record = &Recording::hook;
  }
  ~Recording() {
    detail::on_record = prev_hook_;
    t_run = nullptr;
    t_prev_hook = nullptr;
  }
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;

 private:
  static void hook(const Node& node, const Tensor& result) {
    if (t_prev_hook) t_prev_hook(node, result);
    RecordedRun& run = *t_run;
    run.results.push_back(result);
    run.nodes.push_back(result.grad_fn());
    if (run.on_node) run.on_node(run.results.size() - 1, result);
  }
  static thread_local RecordedRun* t_run;
  static thread_local void (*t_prev_hook)(const Node&, const Tensor&);
  void (*prev_hook_)(const Node&, const Tensor&);
};
thread_local RecordedRun* Recording::t_run = nullptr;
thread_local void (*Recording::t_prev_hook)(const Node&, const Tensor&) = nullptr;

/// Inputs of one node that are the same memory (the same tensor used twice, as in x·x): perturbed
/// together, their analytic gradients summed.
struct InputGroup {
  std::vector<size_t> members;  // the node's input positions
  int leaf = -1;                // gradcheck input it is, or
  int64_t producer = -1;        // position of the node that produced it
  Tensor value;                 // its value in the recorded run
};

std::string op_label(size_t k, const Node& node) {
  return "op #" + std::to_string(k) + " '" + node.name() + "'";
}

/// Runs fn, adding `delta` to element j of the group's value just before node k runs (after node
/// k−1 was recorded), and returns node k's output. Empty with `error` set when the re-run records
/// other ops than the first run.
std::vector<double> perturbed_node_output(const TensorFunction& fn, const std::vector<Tensor>& inputs,
                                          const RecordedRun& first, size_t k, const InputGroup& group, int64_t j,
                                          double delta, std::string& error) {
  std::vector<double> out;
  Tensor target;
  double orig = 0;
  auto restore = [&] {
    if (target.defined()) target.mutable_data<double>()[j] = orig;
    target = Tensor();
  };
  // The re-run works on copies of the inputs: writing into the caller's tensors would bump their
  // version counters, and the first run's nodes (whose backwards the analytic side calls) saved them.
  // An input passed twice stays one tensor.
  std::vector<Tensor> copies;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    size_t same = 0;
    while (same < i && !(t.defined() && inputs[same].is_same(t))) ++same;
    if (same < i) {
      copies.push_back(copies[same]);
      continue;
    }
    Tensor c = t.defined() ? t.detach().clone() : Tensor();
    if (t.defined() && t.requires_grad()) c.requires_grad_();
    copies.push_back(c);
  }
  RecordedRun rerun;
  auto perturb = [&] {
    Tensor t = group.leaf >= 0 ? copies[static_cast<size_t>(group.leaf)] : rerun.results[static_cast<size_t>(group.producer)];
    if (t.dtype() != DType::f64 || t.numel() <= j) return;  // another op there: reported below
    target = t;
    double* p = target.mutable_data<double>();
    orig = p[j];
    p[j] = orig + delta;
  };
  rerun.on_node = [&](size_t pos, const Tensor& result) {
    if (pos + 1 == k) perturb();
    if (pos == k && result.shape() == first.results[k].shape() && result.dtype() == DType::f64) {
      out.assign(result.data<double>(), result.data<double>() + result.numel());
      restore();
    }
  };
  try {
    Recording recording(rerun);
    if (k == 0) perturb();
    evaluate(fn, copies);
  } catch (...) {
    restore();
    throw;
  }
  restore();
  size_t same = 0;
  while (same < rerun.nodes.size() && same < first.nodes.size() &&
         std::strcmp(rerun.nodes[same]->name(), first.nodes[same]->name()) == 0)
    ++same;
  if (same != first.nodes.size() || rerun.nodes.size() != first.nodes.size() || out.empty()) {
    error = "gradcheck (localize): re-running fn recorded other ops than the first run (" +
            std::to_string(first.nodes.size()) + " ops then, " + std::to_string(rerun.nodes.size()) +
            " now; they differ from op #" + std::to_string(same) +
            "): localizing needs a function that records the same ops in the same order every time";
    out.clear();
  }
  return out;
}

bool overlaps(const Tensor& a, const Tensor& b) {
  const double *pa = a.data<double>(), *pb = b.data<double>();
  return pa < pb + b.numel() && pb < pa + a.numel();
}

/// The node's inputs that need a gradient, grouped by memory; an empty result with `skip` set
/// when the node cannot be checked on its own.
std::vector<InputGroup> input_groups(const Node& node, size_t k, const RecordedRun& first,
                                     const std::vector<Tensor>& inputs, std::vector<std::string>& skipped,
                                     std::string& skip) {
  std::vector<InputGroup> groups;
  const auto& next = node.next();
  for (size_t i = 0; i < next.size(); ++i) {
    if (!next[i]) continue;
    InputGroup g;
    if (next[i]->is_accumulator()) {
      for (size_t c = 0; c < inputs.size(); ++c)
        if (inputs[c].requires_grad() && inputs[c].impl()->grad_accumulator == next[i]) g.leaf = static_cast<int>(c);
    } else {
      for (size_t p = 0; p < k; ++p)
        if (first.nodes[p] == next[i]) g.producer = static_cast<int64_t>(p);
    }
    if (g.leaf < 0 && g.producer < 0) {
      skipped.push_back(op_label(k, node) + ": input " + std::to_string(i) + " " + to_string(next[i]->shape()) +
                        (next[i]->is_accumulator() ? " is a leaf that was not passed to gradcheck"
                                                   : " was computed before fn was called") +
                        "; that input is not checked");
      continue;
    }
    if (next[i]->dtype() != DType::f64) {
      skip = "input " + std::to_string(i) + " is " + dtype_name(next[i]->dtype()) + ", not float64";
      return {};
    }
    g.value = g.leaf >= 0 ? inputs[static_cast<size_t>(g.leaf)] : first.results[static_cast<size_t>(g.producer)];
    bool joined = false;
    for (auto& other : groups)
      if (other.value.data<double>() == g.value.data<double>() && other.value.numel() == g.value.numel()) {
        other.members.push_back(i);
        joined = true;
      } else if (overlaps(other.value, g.value)) {
        skip = "inputs " + std::to_string(other.members[0]) + " and " + std::to_string(i) +
               " are different views of one buffer";
        return {};
      }
    if (!joined) {
      g.members.push_back(i);
      groups.push_back(std::move(g));
    }
  }
  // A constant input (no gradient) that shares memory with a perturbed one would move with it. The
  // node shows its constant inputs only through what it saved: a saved tensor that is not one of
  // its gradient inputs (or that it saved under another handle) and overlaps one is refused.
  bool has_constant = false;
  for (const auto& e : next) has_constant = has_constant || !e;
  for (size_t s = 0; s < node.saved_count() && has_constant; ++s) {
    const SavedTensor& saved = node.saved()[s];
    if ((saved.input >= 0 && next[static_cast<size_t>(saved.input)]) || !saved.tensor.defined() ||
        saved.tensor.dtype() != DType::f64)
      continue;
    for (auto& g : groups)
      if (overlaps(saved.tensor, g.value)) {
        skip = (saved.input >= 0 ? "its constant input " + std::to_string(saved.input)
                                 : "a tensor it saved beside a constant input") +
               " shares memory with input " + std::to_string(g.members[0]);
        return {};
      }
  }
  return groups;
}

/// Checks node k of the recorded run alone. `r.ok` false (with the report) when its backward fails
/// to run, returns the wrong number or shape of gradients, or disagrees with central differences.
GradcheckResult check_node(const TensorFunction& fn, const std::vector<Tensor>& inputs, const RecordedRun& first,
                           size_t k, const GradcheckOptions& o, std::vector<std::string>& skipped, bool& checked) {
  checked = false;
  const std::shared_ptr<Node>& node = first.nodes[k];
  const std::string label = op_label(k, *node);
  const auto& next = node->next();
  GradcheckResult r;
  std::string shapes;
  for (size_t i = 0; i < next.size(); ++i) {
    shapes += (i ? ", " : "") + (next[i] ? to_string(next[i]->shape()) + " " + dtype_name(next[i]->dtype())
                                         : std::string("no grad"));
    if (next[i]) r.op_input_shapes.push_back(next[i]->shape());
  }
  const std::string who = "gradcheck (localize): " + label + " (inputs: " + shapes + ")";
  auto failed = [&](std::string message) {
    r.ok = false;
    r.op = node->name();
    r.op_position = static_cast<int64_t>(k);
    r.message = std::move(message);
    return r;
  };

  if (node->dtype() != DType::f64) {
    skipped.push_back(label + ": its output is " + dtype_name(node->dtype()) + ", not float64");
    return r;
  }
  std::string skip;
  std::vector<InputGroup> groups = input_groups(*node, k, first, inputs, skipped, skip);
  if (!skip.empty()) skipped.push_back(label + ": " + skip);
  const int64_t n_out = first.results[k].numel();
  if (groups.empty() || n_out == 0) return r;

  // Analytic: the node's backward for each one-hot output gradient, summed within a group.
  std::vector<std::vector<double>> analytic(groups.size());
  for (size_t gi = 0; gi < groups.size(); ++gi)
    analytic[gi].assign(static_cast<size_t>(groups[gi].value.numel() * n_out), 0.0);
  for (int64_t e = 0; e < n_out; ++e) {
    Tensor onehot = zeros(node->shape(), DType::f64);
    onehot.mutable_data<double>()[e] = 1.0;
    Grads gs;
    try {
      NoGradGuard off;
      node->check_saved_versions("gradcheck (localize)");
      gs = node->apply(onehot);
    } catch (const std::exception& ex) {
      return failed(who + ": its backward threw: " + ex.what());
    }
    if (gs.size() != next.size())
      return failed(who + ": its backward returned " + std::to_string(gs.size()) + " gradients for " +
                    std::to_string(next.size()) + " inputs");
    for (size_t gi = 0; gi < groups.size(); ++gi)
      for (size_t i : groups[gi].members) {
        if (!gs[i].defined()) continue;
        if (gs[i].shape() != next[i]->shape() || gs[i].dtype() != next[i]->dtype())
          return failed(who + ": its backward returned a gradient of shape " + to_string(gs[i].shape()) + " (" +
                        dtype_name(gs[i].dtype()) + ") for input " + std::to_string(i) + ", which has shape " +
                        to_string(next[i]->shape()) + " (" + dtype_name(next[i]->dtype()) + ")");
        const double* g = gs[i].data<double>();
        for (int64_t j = 0; j < gs[i].numel(); ++j) analytic[gi][static_cast<size_t>(j * n_out + e)] += g[j];
      }
  }

  // Numeric: central differences of the node's output in each element of each input group.
  std::vector<std::vector<double>> numeric(groups.size());
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    numeric[gi].assign(analytic[gi].size(), 0.0);
    for (int64_t j = 0; j < groups[gi].value.numel(); ++j) {
      std::string error;
      std::vector<double> plus = perturbed_node_output(fn, inputs, first, k, groups[gi], j, o.eps, error);
      std::vector<double> minus;
      if (error.empty()) minus = perturbed_node_output(fn, inputs, first, k, groups[gi], j, -o.eps, error);
      if (!error.empty()) {  // not this op's fault: the function changed
        GradcheckResult changed;
        changed.ok = false;
        changed.message = std::move(error);
        return changed;
      }
      for (int64_t e = 0; e < n_out; ++e)
        numeric[gi][static_cast<size_t>(j * n_out + e)] =
            (plus[static_cast<size_t>(e)] - minus[static_cast<size_t>(e)]) / (2 * o.eps);
    }
  }
  checked = true;

  std::vector<Tensor> values(next.size());
  std::vector<size_t> representative;
  for (auto& g : groups) {
    values[g.members[0]] = g.value;
    representative.push_back(g.members[0]);
  }
  GradcheckResult mismatch =
      compare(analytic, numeric, values, representative, n_out, o, who + " is the first recorded op whose backward disagrees");
  if (mismatch.ok) return r;
  std::string message = mismatch.message;
  std::string constants;
  for (size_t i = 0; i < next.size(); ++i)
    if (!next[i]) constants += (constants.empty() ? "" : ", ") + std::to_string(i);
  if (!constants.empty())
    message += "; input " + constants +
               " has no gradient: if fn computes it off the tape from a perturbed input (a detached max, "
               "as in a stable logsumexp), the numeric side includes that path and this may be a false alarm";
  for (auto& g : groups)
    if (g.members[0] == static_cast<size_t>(mismatch.input) && g.members.size() > 1) {
      message += "; inputs";
      for (size_t i : g.members) message += " " + std::to_string(i);
      message += " are one tensor, their gradients are summed";
    }
  mismatch.op_input_shapes = r.op_input_shapes;
  r = mismatch;
  return failed(message);
}

/// The localize pass: records fn once and checks each of its nodes in forward order.
GradcheckResult localize_check(const TensorFunction& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& o) {
  RecordedRun first;
  {
    Recording recording(first);
    evaluate(fn, inputs);
  }
  GradcheckResult r;
  std::vector<std::string> skipped;
  int64_t checked_ops = 0;
  for (size_t k = 0; k < first.nodes.size(); ++k) {
    bool checked = false;
    GradcheckResult node_result = check_node(fn, inputs, first, k, o, skipped, checked);
    checked_ops += checked;
    if (!node_result.ok) {
      node_result.ops_checked = checked_ops;
      node_result.skipped = std::move(skipped);
      return node_result;
    }
  }
  r.ops_checked = checked_ops;
  r.skipped = std::move(skipped);
  return r;
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

  if (o.localize) {
    GradcheckResult local = localize_check(fn, inputs, o);
    if (!local.ok) return fail(local, o);
    GradcheckOptions composite = o;
    composite.localize = false;
    composite.raise_exception = false;
    GradcheckResult whole = gradcheck(fn, inputs, composite);
    whole.ops_checked = local.ops_checked;
    whole.skipped = std::move(local.skipped);
    if (!whole.ok) {
      whole.op.clear();  // every recorded op passed on its own: none is named
      whole.message += "; no recorded op disagrees on its own inputs (" + std::to_string(whole.ops_checked) +
                       " checked, " + std::to_string(whole.skipped.size()) +
                       " skipped: see result.skipped), so the mismatch comes from computation off the tape "
                       "(a detach(), a value read through data()) or from a skipped op";
      return fail(whole, o);
    }
    return whole;
  }
  if (o.fast_mode) return fast_check(fn, inputs, checked_ix, o);

  // A function that is one recorded op on the inputs is named in every failure.
  Tensor probe = evaluate(fn, inputs);
  const int64_t n_out = probe.numel();
  const char* op = single_op(probe);
  const std::string who = op ? "gradcheck of '" + std::string(op) + "'" : "gradcheck";
  auto fail_op = [&](GradcheckResult r) {
    if (op) r.op = op;
    return fail(std::move(r), o);
  };

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
    return fail_op(r);
  }
  auto numeric = numeric_jacobian(fn, inputs, checked_ix, o.eps);
  GradcheckResult r = compare(analytic, numeric, inputs, checked_ix, n_out, o, who);
  if (!r.ok) return fail_op(r);

  // Reentrant: a second backward gives exactly the same Jacobian.
  std::string unused;
  auto again = analytic_jacobian(fn, inputs, checked_ix, unused);
  for (size_t i = 0; i < again.size(); ++i)
    for (size_t e = 0; e < again[i].size(); ++e)
      if (again[i][e] != analytic[i][e] && !(std::isnan(again[i][e]) && std::isnan(analytic[i][e]))) {
        GradcheckResult bad;
        bad.input = static_cast<int>(checked_ix[i]);
        bad.message = who + ": backward is not reentrant: two runs give different gradients for input " +
                      std::to_string(checked_ix[i]) + " (" + std::to_string(analytic[i][e]) + " vs " +
                      std::to_string(again[i][e]) + ")";
        return fail_op(bad);
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
          bad.message = who + ": a zero output gradient gave a non-zero gradient " + std::to_string(bad.analytic) +
                        " for input " + std::to_string(checked_ix[i]) + " at element " + index_string(gs[i].shape(), j);
          return fail_op(bad);
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
