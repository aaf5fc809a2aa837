// Optimizer base: groups, state and state dicts.
#include "optim/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <stdexcept>

namespace tapegrad::optim {

std::optional<double> optional_state_entry(const NamedTensors& state, const std::string& who, const std::string& key) {
  for (const auto& [name, t] : state)
    if (name == key) return state_entry(state, who, key, 1)[0];
  return std::nullopt;
}

std::vector<double> state_entry(const NamedTensors& state, const std::string& who, const std::string& key, int64_t numel) {
  for (const auto& [name, t] : state)
    if (name == key) {
      if (!t.defined() || t.numel() != numel)
        throw std::invalid_argument(who + "::load_state_dict: '" + key + "' has " +
                                    (t.defined() ? std::to_string(t.numel()) : std::string("no")) + " elements, expected " +
                                    std::to_string(numel));
      return t.to_vector();
    }
  throw std::invalid_argument(who + "::load_state_dict: no '" + key + "' in the state");
}

int64_t state_count(const NamedTensors& state, const std::string& who, const std::string& key) {
  const double v = state_entry(state, who, key, 1)[0];
  if (!(v >= 0 && v <= 9.0e15 && v == std::floor(v)))
    throw std::invalid_argument(who + "::load_state_dict: '" + key + "' must be a count, got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

Optimizer::~Optimizer() = default;

void Optimizer::invalid(const std::string& what) const {
  throw std::invalid_argument(std::string("tapegrad::optim::") + name_ + ": " + what);
}

void Optimizer::add_group(std::vector<Tensor> params) {
  if (params.empty()) invalid("got an empty parameter list (group " + std::to_string(groups_.size()) + ")");
  std::set<const TensorImpl*> seen;
  for (auto& g : groups_)
    for (auto& p : g) seen.insert(p.impl().get());
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    const std::string at = "parameter " + std::to_string(i) + " of group " + std::to_string(groups_.size());
    if (!p.defined()) invalid(at + " is undefined");
    if (!is_floating(p.dtype())) invalid(at + " is " + dtype_name(p.dtype()) + ", not floating");
    if (!p.is_leaf()) invalid(at + " is not a leaf (it was computed by an op)");
    if (!seen.insert(p.impl().get()).second) invalid(at + " appears twice");
  }
  state_.resize(state_.size() + params.size());
  groups_.push_back(std::move(params));
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g) p.zero_grad();
}

double Optimizer::group_lr(size_t g) const {
  if (g >= groups_.size()) invalid("no parameter group " + std::to_string(g));
  for (auto& f : group_fields(g))
    if (std::strcmp(f.name, "lr") == 0) return *f.number;
  return 0.0;
}

void Optimizer::set_group_lr(size_t g, double lr) {
  if (g >= groups_.size()) invalid("no parameter group " + std::to_string(g));
  // As the constructors check it: an infinite rate would write ±inf into the parameters.
  if (!(lr >= 0 && std::isfinite(lr)))
    invalid("learning rate of group " + std::to_string(g) + " must be finite and >= 0, got " + std::to_string(lr));
  for (auto& f : group_fields(g))
    if (std::strcmp(f.name, "lr") == 0) *f.number = lr;
}

double Optimizer::lr() const { return group_lr(0); }

void Optimizer::set_lr(double lr) {
  for (size_t g = 0; g < groups_.size(); ++g) set_group_lr(g, lr);
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> out;
  for (auto& g : groups_) out.insert(out.end(), g.begin(), g.end());
  return out;
}

Tensor& Optimizer::state(size_t i, const char* name, const Tensor& p, double init) {
  auto& m = state_[i];
  auto it = m.find(name);
  if (it == m.end()) it = m.emplace(name, full(p.shape(), init, p.dtype())).first;
  else if (it->second.dtype() != p.dtype())  // the model was converted (Module::to) after this state was made
    throw DTypeError(std::string("tapegrad::optim::") + name_ + "::step: state '" + name + "' of parameter " +
                     std::to_string(i) + " is " + dtype_name(it->second.dtype()) + " but the parameter is " +
                     dtype_name(p.dtype()) + " (converted after the optimizer stepped): create the optimizer again");
  return it->second;
}

double& Optimizer::counter(size_t i, const char* name) {
  auto& m = state_[i];
  auto it = m.find(name);
  if (it == m.end()) it = m.emplace(name, scalar(0.0, DType::f64)).first;
  return it->second.mutable_data<double>()[0];
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  for (size_t i = 0; i < state_.size(); ++i)
    for (auto& [n, t] : state_[i]) out.emplace_back("state." + std::to_string(i) + "." + n, t);
  for (size_t g = 0; g < groups_.size(); ++g)
    for (auto& f : group_fields(g))
      out.emplace_back("param_groups." + std::to_string(g) + "." + f.name,
                       scalar(f.number ? *f.number : double(*f.flag), DType::f64));
  return out;
}

Optimizer::Staged Optimizer::stage(const NamedTensors& dict) const {
  std::vector<std::string> problems;
  Staged staged{std::vector<std::map<std::string, Tensor>>(state_.size()),
                std::vector<std::map<std::string, double>>(groups_.size())};
  const auto params = parameters();
  for (auto& [key, t] : dict) {
    size_t a = key.find('.'), b = a == std::string::npos ? a : key.find('.', a + 1);
    if (b == std::string::npos || !t.defined()) {
      problems.push_back("unexpected key '" + key + "'");
      continue;
    }
    const std::string kind = key.substr(0, a), field = key.substr(b + 1);
    size_t index = 0;
    try {
      index = std::stoul(key.substr(a + 1, b - a - 1));
    } catch (const std::exception&) {
      problems.push_back("unexpected key '" + key + "'");
      continue;
    }
    if (kind == "state" && index < params.size()) {
      const Tensor& p = params[index];
      const bool counter = t.numel() == 1 && t.dtype() == DType::f64 && field == "step";
      if (!counter && (t.shape() != p.shape() || t.dtype() != p.dtype())) {
        problems.push_back("'" + key + "': expected " + dtype_name(p.dtype()) + " " + to_string(p.shape()) + ", got " +
                           dtype_name(t.dtype()) + " " + to_string(t.shape()));
        continue;
      }
      const std::vector<double> values = t.to_vector();
      if (counter && !(values[0] >= 0 && values[0] <= 9.0e15 && values[0] == std::floor(values[0])))
        problems.push_back("'" + key + "' must be a whole number >= 0, got " + std::to_string(values[0]));
      else if (!std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); }))
        problems.push_back("'" + key + "' holds values that are not finite");
      else staged.state[index][field] = t;
    } else if (kind == "param_groups" && index < groups_.size()) {
      bool found = false;
      for (auto& f : group_fields(index))
        if (field == f.name) {
          found = true;
          const double v = t.numel() == 1 ? t.item() : 0.0;
          if (t.numel() != 1) problems.push_back("'" + key + "' must hold one value, got shape " + to_string(t.shape()));
          else if (!f.number && v != 0 && v != 1) problems.push_back("'" + key + "' is a flag: 0 or 1, got " + std::to_string(v));
          else if (!staged.options[index].emplace(field, v).second) problems.push_back("'" + key + "' appears twice");
        }
      if (!found) problems.push_back("unknown option '" + key + "'");
    } else {
      problems.push_back("unexpected key '" + key + "' (this optimizer has " + std::to_string(params.size()) +
                         " parameters in " + std::to_string(groups_.size()) + " groups)");
    }
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    bool complete = true;
    for (auto& f : group_fields(g))
      if (!staged.options[g].count(f.name)) {
        problems.push_back("missing option 'param_groups." + std::to_string(g) + "." + f.name + "'");
        complete = false;
      }
    // The constructor's own check of the options as they would be after loading.
    if (const std::string why = complete ? group_options_problem(g, staged.options[g]) : ""; !why.empty())
      problems.push_back("param_groups." + std::to_string(g) + ": " + why);
  }
  if (!problems.empty()) {
    std::string msg = std::string("tapegrad::optim::") + name_ + "::load_state_dict: " + std::to_string(problems.size()) +
                      " problem(s):";
    for (auto& p : problems) msg += "\n  " + p;
    throw std::invalid_argument(msg);
  }
  return staged;
}

void Optimizer::check_state_dict(const NamedTensors& dict) const { (void)stage(dict); }

void Optimizer::load_state_dict(const NamedTensors& dict) {
  Staged staged = stage(dict);
  for (auto& per_param : staged.state)
    for (auto& [field, t] : per_param) t = t.detach().clone().detach();
  for (size_t g = 0; g < groups_.size(); ++g)
    for (auto& f : group_fields(g)) {
      const double v = staged.options[g].at(f.name);
      if (f.number) *f.number = v;
      else *f.flag = v != 0;
    }
  state_ = std::move(staged.state);
}

}  // namespace tapegrad::optim
