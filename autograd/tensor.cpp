#include "autograd/tensor.hpp"

#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"

namespace tapegrad {

std::string to_string(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void throw_too_large(const char* op, const Shape& s) {
  throw ShapeError(std::string("tapegrad::") + op + ": shape " + to_string(s) +
                   " has more elements than int64 can count");
}

void Tensor::throw_undefined(const char* what) {
  throw std::invalid_argument(std::string("tapegrad::Tensor::") + what +
                              ": the tensor is undefined (default-constructed)");
}

namespace kernels {

void check_defined(const char* op, const Tensor& t) {
  if (!t.defined()) throw std::invalid_argument(std::string("tapegrad::") + op + ": got an undefined tensor");
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  check_defined(op, a);
  check_defined(op, b);
  if (a.dtype() != b.dtype())
    throw DTypeError(std::string("tapegrad::") + op + ": dtypes differ: " + dtype_name(a.dtype()) + " " +
                     to_string(a.shape()) + " and " + dtype_name(b.dtype()) + " " + to_string(b.shape()) +
                     " (convert one with .to())");
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  if (a == b) return a;
  size_t n = std::max(a.size(), b.size());
  Shape out(std::vector<int64_t>(n, 1));
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw ShapeError(std::string("tapegrad::") + op + ": shapes " + to_string(a) + " and " + to_string(b) +
                       " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  out.numel(op);  // the inputs' counts fit; their broadcast's may not
  return out;
}

int64_t normalize_axis(const char* op, int64_t axis, int64_t rank) {
  int64_t r = std::max<int64_t>(rank, 1);
  if (axis < -r || axis >= r)
    throw ShapeError(std::string("tapegrad::") + op + ": axis " + std::to_string(axis) +
                     " is out of range for a tensor of rank " + std::to_string(rank));
  return axis < 0 ? axis + r : axis;
}

Tensor copy(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), t.dtype());
  std::memcpy(out.mutable_data<char>(), t.data<char>(), static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
  return out;
}

void add_inplace(const Tensor& dst, const Tensor& src) {
  dispatch(dst.dtype(), "add_", [&](auto z) {
    using T = decltype(z);
    T* d = dst.mutable_data<T>();
    const T* s = src.data<T>();
    const int64_t n = dst.numel();
    for (int64_t i = 0; i < n; ++i) d[i] += s[i];
  });
}

Tensor alias(const Tensor& t, const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.impl()->storage;
  impl->offset = t.impl()->offset;
  impl->shape = shape;
  impl->numel = shape.numel();
  impl->dtype = t.dtype();
  return Tensor(std::move(impl));
}

}  // namespace kernels

// ---- Tensor -----------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (auto d : shape)
    if (d < 0) throw ShapeError("tapegrad::empty: negative dimension in shape " + tapegrad::to_string(shape));
  const int64_t numel = shape.numel("empty");
  if (static_cast<uint64_t>(numel) > static_cast<uint64_t>(PTRDIFF_MAX) / dtype_size(dtype))
    throw ShapeError("tapegrad::empty: shape " + tapegrad::to_string(shape) + " of " + dtype_name(dtype) +
                     " needs more than PTRDIFF_MAX bytes");
  if (detail::on_allocate) detail::on_allocate();
  auto impl = std::make_shared<TensorImpl>();
  impl->numel = numel;
  impl->storage = Storage(static_cast<size_t>(impl->numel) * dtype_size(dtype));
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

template <class T>
const T* Tensor::data() const {
  get("data");
  if constexpr (!std::is_same_v<T, char>) {
    if (impl_->dtype != dtype_of<T>())
      throw DTypeError(std::string("tapegrad::Tensor::data: the tensor is ") + dtype_name(impl_->dtype) +
                       ", asked for " + dtype_name(dtype_of<T>()));
    return static_cast<const T*>(impl_->storage.data()) + impl_->offset;
  } else {
    return static_cast<const char*>(impl_->storage.data()) + impl_->offset * static_cast<int64_t>(dtype_size(impl_->dtype));
  }
}
template const float* Tensor::data<float>() const;
template const double* Tensor::data<double>() const;
template const int64_t* Tensor::data<int64_t>() const;
template const bool* Tensor::data<bool>() const;
template const char* Tensor::data<char>() const;

int64_t Tensor::size(int64_t d) const {
  const Shape& s = get("size").shape;
  // normalize_axis lets axis 0 and -1 through at rank 0 (a reduction over a 0-d tensor is valid),
  // but a 0-d tensor has no dimension to report (PyTorch throws too).
  if (s.size() == 0)
    throw ShapeError("tapegrad::size: dimension specified as " + std::to_string(d) +
                     " but the tensor has no dimensions (rank 0, shape [])");
  return s[kernels::normalize_axis("size", d, static_cast<int64_t>(s.size()))];
}

namespace {
double element(const Tensor& t, int64_t flat) {
  return kernels::dispatch_all(t.dtype(), [&](auto z) { return static_cast<double>(t.data<decltype(z)>()[flat]); });
}
}  // namespace

double Tensor::item() const {
  if (get("item").numel != 1)
    throw ShapeError("tapegrad::item: needs a tensor with one element, got shape " + tapegrad::to_string(shape()));
  return element(*this, 0);
}

double Tensor::at(const std::vector<int64_t>& index) const {
  get("at");
  if (index.size() != shape().size())
    throw ShapeError("tapegrad::at: index of rank " + std::to_string(index.size()) + " for a tensor of shape " +
                     tapegrad::to_string(shape()));
  int64_t flat = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    int64_t ix = index[i] < 0 ? index[i] + shape()[i] : index[i];
    if (ix < 0 || ix >= shape()[i])
      throw ShapeError("tapegrad::at: index " + std::to_string(index[i]) + " out of range for dimension " +
                       std::to_string(i) + " of shape " + tapegrad::to_string(shape()));
    flat = flat * shape()[i] + ix;
  }
  return element(*this, flat);
}
double Tensor::at(std::initializer_list<int64_t> index) const { return at(std::vector<int64_t>(index)); }

std::vector<double> Tensor::to_vector() const {
  std::vector<double> out(static_cast<size_t>(get("to_vector").numel));
  for (int64_t i = 0; i < numel(); ++i) out[static_cast<size_t>(i)] = element(*this, i);
  return out;
}

Tensor& Tensor::requires_grad_(bool value) {
  if (get("requires_grad_").grad_fn)
    throw AutogradError("tapegrad::requires_grad_: only leaves can be marked; this tensor was produced by '" +
                        std::string(impl_->grad_fn->name()) + "' (use detach() first)");
  if (value && !is_floating(dtype()))
    throw DTypeError(std::string("tapegrad::requires_grad_: only floating tensors (float32, float64) can require grad, got ") +
                     dtype_name(dtype()) + " " + tapegrad::to_string(shape()));
  impl_->requires_grad = value;
  return *this;
}

void Tensor::set_grad(const Tensor& g) {
  get("set_grad");
  if (g.defined() && (g.shape() != shape() || g.dtype() != dtype()))
    throw ShapeError("tapegrad::set_grad: gradient of shape " + tapegrad::to_string(g.shape()) + " (" +
                     dtype_name(g.dtype()) + ") for a tensor of shape " + tapegrad::to_string(shape()) + " (" +
                     dtype_name(dtype()) + ")");
  impl_->grad = g.defined() ? g.impl() : nullptr;
}

Tensor Tensor::detach() const { return kernels::alias(*this, get("detach").shape); }

Tensor Tensor::clone() const {
  get("clone");
  Tensor result = kernels::copy(*this);
  return record("clone", result, {*this}, [](const BackwardContext& ctx) -> Grads { return {ctx.grad}; });
}

// Conversions follow C++ (and PyTorch): to bool, nonzero (NaN included) is true; from bool, 0 or 1;
// floating to int64 truncates toward zero.
Tensor Tensor::to(DType target) const {
  if (target == get("to").dtype) return *this;
  Tensor result = Tensor::empty(shape(), target);
  kernels::dispatch_all(dtype(), [&](auto zs) {
    kernels::dispatch_all(target, [&](auto zd) {
      using S = decltype(zs);
      using D = decltype(zd);
      const S* s = data<S>();
      D* d = result.mutable_data<D>();
      for (int64_t i = 0; i < numel(); ++i) d[i] = static_cast<D>(s[i]);
    });
  });
  if (!is_floating(target) || !is_floating(dtype())) return result;
  DType from = dtype();
  return record("to", result, {*this},
                [from](const BackwardContext& ctx) -> Grads { return {ctx.grad.to(from)}; });
}

Tensor Tensor::reshape(const Shape& s) const { return tapegrad::reshape(*this, s); }
Tensor Tensor::t() const {
  if (get("t").shape.size() != 2) throw ShapeError("tapegrad::t: needs a 2-D tensor, got shape " + tapegrad::to_string(shape()));
  return transpose(*this, 0, 1);
}
Tensor Tensor::sum() const { return tapegrad::sum(*this); }
Tensor Tensor::mean() const { return tapegrad::mean(*this); }

// ---- printing ---------------------------------------------------------------------------------

namespace {
void print_element(std::ostream& os, const Tensor& t, int64_t flat) {
  if (t.dtype() == DType::b8) os << (t.data<bool>()[flat] ? "True" : "False");
  else os << element(t, flat);
}

void print_rec(std::ostream& os, const Tensor& t, size_t dim, int64_t& flat, int indent) {
  const Shape& s = t.shape();
  if (s.empty()) {
    print_element(os, t, 0);
    return;
  }
  os << "[";
  int64_t n = s[dim];
  int64_t inner = 1;
  for (size_t i = dim + 1; i < s.size(); ++i) inner *= s[i];
  const int64_t edge = 3;
  for (int64_t i = 0; i < n; ++i) {
    if (n > 2 * edge + 1 && i == edge) {
      os << "..., ";
      flat += (n - 2 * edge) * inner;
      i = n - edge - 1;
      continue;
    }
    if (dim + 1 == s.size()) {
      print_element(os, t, flat++);
    } else {
      if (i) os << "\n" << std::string(static_cast<size_t>(indent + 1), ' ');
      print_rec(os, t, dim + 1, flat, indent + 1);
    }
    if (i + 1 < n) os << ", ";
  }
  os << "]";
}
}  // namespace

std::string Tensor::to_string() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  os << "tensor(";
  int64_t flat = 0;
  auto flags = os.flags();
  os << std::setprecision(6);
  print_rec(os, t, 0, flat, 7);
  os.flags(flags);
  os << ", shape=" << to_string(t.shape()) << ", dtype=" << dtype_name(t.dtype());
  if (t.grad_fn()) os << ", grad_fn=" << t.grad_fn()->name();
  else if (t.requires_grad()) os << ", requires_grad=true";
  return os << ")";
}

// ---- creation ---------------------------------------------------------------------------------

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  kernels::dispatch_all(dtype, [&](auto z) {
    using T = decltype(z);
    std::fill_n(t.mutable_data<T>(), t.numel(), static_cast<T>(value));
  });
  return t;
}
Tensor zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.dtype()); }
Tensor scalar(double value, DType dtype) { return full(Shape{}, value, dtype); }

Tensor tensor(const std::vector<double>& values, const Shape& shape, DType dtype) {
  if (static_cast<int64_t>(values.size()) != shape.numel())
    throw ShapeError("tapegrad::tensor: " + std::to_string(values.size()) + " values for shape " +
                     tapegrad::to_string(shape) + " (" + std::to_string(shape.numel()) + " elements)");
  Tensor t = Tensor::empty(shape, dtype);
  kernels::dispatch_all(dtype, [&](auto z) {
    using T = decltype(z);
    T* d = t.mutable_data<T>();
    for (size_t i = 0; i < values.size(); ++i) d[i] = static_cast<T>(values[i]);
  });
  return t;
}
Tensor tensor(const std::vector<double>& values, DType dtype) {
  return tensor(values, Shape{static_cast<int64_t>(values.size())}, dtype);
}

Tensor index_tensor(const std::vector<int64_t>& values, const Shape& shape) {
  if (static_cast<int64_t>(values.size()) != shape.numel())
    throw ShapeError("tapegrad::index_tensor: " + std::to_string(values.size()) + " values for shape " +
                     tapegrad::to_string(shape));
  Tensor t = Tensor::empty(shape, DType::i64);
  std::copy(values.begin(), values.end(), t.mutable_data<int64_t>());
  return t;
}
Tensor index_tensor(const std::vector<int64_t>& values) {
  return index_tensor(values, Shape{static_cast<int64_t>(values.size())});
}

Tensor arange(double start, double stop, double step, DType dtype) {
  if (dtype == DType::b8) throw DTypeError("tapegrad::arange: not supported for bool (use int64, float32 or float64)");
  if (step == 0 || !std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step))
    throw std::invalid_argument("tapegrad::arange: needs finite start/stop and a non-zero step, got start=" +
                                std::to_string(start) + " stop=" + std::to_string(stop) +
                                " step=" + std::to_string(step));
  const double count = std::ceil((stop - start) / step);
  if (!(count < 0x1p62))  // too many (or NaN): casting it to int64 would be undefined
    throw ShapeError("tapegrad::arange: start=" + std::to_string(start) + " stop=" + std::to_string(stop) +
                     " step=" + std::to_string(step) + " gives 2^62 or more elements");
  const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  Tensor t = Tensor::empty(Shape{n}, dtype);
  kernels::dispatch_all(dtype, [&](auto z) {
    using T = decltype(z);
    for (int64_t i = 0; i < n; ++i) t.mutable_data<T>()[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return t;
}

}  // namespace tapegrad
