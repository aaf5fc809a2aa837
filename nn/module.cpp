// Module bookkeeping: registration, recursive collections with dotted names, train/eval,
// summary and state dicts.
#include "nn/module.hpp"

#include <cstring>
#include <deque>
#include <iomanip>
#include <map>
#include <sstream>
#include <stdexcept>
#include <unordered_set>

#include "autograd/node.hpp"

namespace tapegrad::nn {

Module::~Module() = default;

void Module::check_name(const char* what, const std::string& name) const {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("tapegrad::nn::" + repr() + "." + what + ": " + why);
  };
  if (name.empty()) fail("the name is empty");
  if (name.find('.') != std::string::npos) fail("the name '" + name + "' contains '.' (dots separate submodules)");
  for (auto& [n, p] : params_)
    if (n == name) fail("the name '" + name + "' is already used by a parameter");
  for (auto& [n, b] : buffers_)
    if (n == name) fail("the name '" + name + "' is already used by a buffer");
  for (auto& [n, c] : children_)
    if (n == name) fail("the name '" + name + "' is already used by a submodule");
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  check_name("register_parameter", name);
  if (!t.defined())
    throw std::invalid_argument("tapegrad::nn::" + repr() + ".register_parameter: parameter '" + name + "' is undefined");
  if (!is_floating(t.dtype()))
    throw DTypeError("tapegrad::nn::" + repr() + ".register_parameter: parameter '" + name + "' must be floating, got " +
                     dtype_name(t.dtype()));
  t.requires_grad_(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_name("register_buffer", name);
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, ModulePtr m) {
  check_name("register_module", name);
  if (!m) throw std::invalid_argument("tapegrad::nn::" + repr() + ".register_module: submodule '" + name + "' is null");
  children_.emplace_back(name, std::move(m));
}

void Module::collect(const std::string& prefix, NamedTensors& out, bool buffers) const {
  for (auto& [n, t] : buffers ? buffers_ : params_) out.emplace_back(prefix + n, t);
  for (auto& [n, c] : children_) c->collect(prefix + n + ".", out, buffers);
}

namespace {
/// `all` without the later entries of a tensor already listed (PyTorch's remove_duplicate).
NamedTensors first_names(const NamedTensors& all) {
  NamedTensors out;
  std::unordered_set<const void*> seen;  // the tensors' handles (Tensor::is_same compares these)
  for (auto& [n, t] : all)
    if (!t.defined() || seen.insert(t.impl().get()).second) out.emplace_back(n, t);
  return out;
}
}  // namespace

NamedTensors Module::named_parameters() const {
  NamedTensors all;
  collect("", all, false);
  return first_names(all);
}

NamedTensors Module::named_buffers() const {
  NamedTensors all;
  collect("", all, true);
  return first_names(all);
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<Tensor> Module::buffers() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_buffers()) out.push_back(t);
  return out;
}

std::vector<ModulePtr> Module::children() const {
  std::vector<ModulePtr> out;
  for (auto& [n, c] : children_) out.push_back(c);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& p : parameters()) p.zero_grad();
}

Module& Module::to(DType dtype) {
  if (!is_floating(dtype))
    throw DTypeError("tapegrad::nn::" + repr() + ".to: parameters and buffers convert to a floating dtype, got " +
                     dtype_name(dtype));
  NoGradGuard no_grad;
  auto convert = [dtype](const Tensor& t) {
    if (!t.defined() || !is_floating(t.dtype()) || t.dtype() == dtype) return;
    TensorImpl& impl = *t.impl();
    Tensor converted = t.detach().to(dtype);
    const uint64_t old_version = impl.storage.version();
    impl.storage = converted.impl()->storage;
    impl.offset = converted.impl()->offset;
    impl.dtype = dtype;
    // A graph that saved this tensor recorded the old storage's version: start the new one past it,
    // so that backward refuses to run instead of reading data of the wrong dtype.
    for (uint64_t v = 0; v <= old_version; ++v) impl.storage.bump_version();
    if (impl.grad) impl.grad = Tensor(impl.grad).detach().to(dtype).impl();
    impl.grad_accumulator.reset();  // it caches the leaf's dtype; the next backward makes a new one
  };
  for (auto& [n, p] : named_parameters()) convert(p);
  for (auto& [n, b] : named_buffers()) convert(b);
  return *this;
}

Tensor UnaryModule::summarize(const Tensor& x, const std::string& prefix, std::vector<SummaryRow>& rows) {
  Tensor y = forward(x);
  int64_t n = 0;
  for (auto& p : parameters()) n += p.numel();
  rows.push_back({prefix + repr(), y.shape(), n});
  return y;
}

namespace {
/// Every module of the tree with its training flag, parents before children, to restore after
/// summary(): train(on) in this order leaves each module with its own flag.
void collect_modes(Module& m, std::vector<std::pair<Module*, bool>>& out) {
  out.emplace_back(&m, m.is_training());
  for (auto& c : m.children()) collect_modes(*c, out);
}
}  // namespace

std::string UnaryModule::summary(const Shape& input_shape, std::optional<DType> dtype) {
  std::vector<std::pair<Module*, bool>> modes;
  collect_modes(*this, modes);
  auto restore = [&] {
    for (auto& [m, on] : modes) m->train(on);
  };
  std::vector<SummaryRow> rows;
  eval();
  try {
    NoGradGuard no_grad;
    if (!dtype) {
      auto params = parameters();
      dtype = params.empty() ? DType::f32 : params.front().dtype();
    }
    summarize(zeros(input_shape, *dtype), "", rows);
  } catch (...) {
    restore();
    throw;
  }
  restore();

  size_t w0 = 5, w1 = 12;
  for (auto& r : rows) {
    w0 = std::max(w0, r.layer.size());
    w1 = std::max(w1, to_string(r.output).size());
  }
  int64_t total = 0, trainable = 0;
  for (auto& p : parameters()) {
    total += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  std::ostringstream os;
  const size_t width = w0 + w1 + 4 + 12;
  os << std::left << std::setw(static_cast<int>(w0 + 2)) << "Layer" << std::setw(static_cast<int>(w1 + 2))
     << "Output shape" << std::right << std::setw(12) << "Params" << "\n"
     << std::string(width, '=') << "\n";
  for (auto& r : rows)
    os << std::left << std::setw(static_cast<int>(w0 + 2)) << r.layer << std::setw(static_cast<int>(w1 + 2))
       << to_string(r.output) << std::right << std::setw(12) << r.params << "\n";
  os << std::string(width, '=') << "\n"
     << "Total params: " << total << "\nTrainable params: " << trainable
     << "\nNon-trainable params: " << total - trainable << "\n";
  return os.str();
}

NamedTensors Module::state_dict() const {
  NamedTensors out;  // every name, a shared tensor under each of its names (as PyTorch's state_dict)
  collect("", out, false);
  collect("", out, true);
  return out;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  std::map<std::string, Tensor> given;
  std::vector<std::string> problems;
  for (auto& [n, t] : state)
    if (!given.emplace(n, t).second) problems.push_back("duplicate key '" + n + "'");
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  for (auto& [n, dst] : state_dict()) {
    auto it = given.find(n);
    if (it == given.end()) {
      if (strict) problems.push_back("missing key '" + n + "'");
      continue;
    }
    const Tensor& src = it->second;
    if (!src.defined()) problems.push_back("'" + n + "' is undefined");
    else if (src.shape() != dst.shape() || src.dtype() != dst.dtype())
      problems.push_back("'" + n + "': expected " + dtype_name(dst.dtype()) + " " + to_string(dst.shape()) +
                         ", got " + dtype_name(src.dtype()) + " " + to_string(src.shape()));
    else copies.emplace_back(dst, src);
    given.erase(it);
  }
  if (strict)
    for (auto& [n, t] : given) problems.push_back("unexpected key '" + n + "'");
  if (!problems.empty()) {
    std::string msg = "tapegrad::nn::load_state_dict: " + std::to_string(problems.size()) + " problem(s):";
    for (auto& p : problems) msg += "\n  " + p;
    throw std::invalid_argument(msg);
  }
  // All checks passed: copy in place, so that nothing is half-loaded on error.
  for (auto& [dst, src] : copies)
    std::memcpy(dst.mutable_data<char>(), src.data<char>(), static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype()));
}

// ---- profiler scopes ----------------------------------------------------------------------------

namespace {
/// The module scopes open on this thread (while profiling), outermost first, with their paths.
struct ModuleFrame {
  const Module* module;
  std::string path;
};
thread_local std::vector<ModuleFrame> t_module_frames;
/// (enclosing module, module) -> dotted name of the module under the enclosing one; cleared when
/// the root's scope closes, so modules destroyed between steps leave no stale entries.
thread_local std::map<std::pair<const Module*, const Module*>, std::string> t_relative_paths;

/// The dotted name of `m` under `parent` (breadth first: the shortest), or m's repr() when `parent`
/// does not hold it.
std::string relative_path(const Module& parent, const Module& m) {
  auto [it, inserted] = t_relative_paths.try_emplace({&parent, &m});
  if (!inserted) return it->second;
  std::deque<std::pair<const Module*, std::string>> queue{{&parent, ""}};
  std::string found;
  while (!queue.empty() && found.empty()) {
    auto [module, prefix] = queue.front();
    queue.pop_front();
    for (auto& [name, child] : module->named_children()) {
      std::string path = prefix.empty() ? name : prefix + "." + name;
      if (child.get() == &m) {
        found = path;
        break;
      }
      queue.emplace_back(child.get(), std::move(path));
    }
  }
  it->second = found.empty() ? m.repr() : found;
  return it->second;
}
}  // namespace

void ModuleScope::open(const Module& m) {
  if (!t_module_frames.empty() && t_module_frames.back().module == &m) return;
  std::string path;
  if (!t_module_frames.empty()) {
    const ModuleFrame& outer = t_module_frames.back();
    const std::string rel = relative_path(*outer.module, m);
    path = outer.path.empty() ? rel : outer.path + "." + rel;
  }
  scope_.emplace(path.empty() ? m.repr() : path, ScopeKind::module);
  t_module_frames.push_back({&m, std::move(path)});
  opened_ = true;
}

void ModuleScope::close() {
  scope_.reset();
  t_module_frames.pop_back();
  if (t_module_frames.empty()) t_relative_paths.clear();
}

// ---- containers ---------------------------------------------------------------------------------

void Sequential::push_back(UnaryModulePtr m) {
  add_child(std::to_string(modules_.size()), m);
  modules_.push_back(std::move(m));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& m : modules_) y = (*m)(y);
  return y;
}

Tensor Sequential::summarize(const Tensor& x, const std::string& prefix, std::vector<SummaryRow>& rows) {
  Tensor y = x;
  for (size_t i = 0; i < modules_.size(); ++i) y = modules_[i]->summarize(y, prefix + std::to_string(i) + ": ", rows);
  return y;
}

void ModuleList::push_back(ModulePtr m) {
  add_child(std::to_string(modules_.size()), m);
  modules_.push_back(std::move(m));
}

void ModuleList::throw_wrong_type(size_t i) const {
  throw std::invalid_argument("tapegrad::nn::ModuleList.at: module " + std::to_string(i) + " is " +
                              modules_.at(i)->repr() + ", not of the type asked for");
}

}  // namespace tapegrad::nn
