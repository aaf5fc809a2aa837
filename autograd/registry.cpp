// The op registry and the built-in ops' sample inputs. Samples are float64, cover broadcasting and
// edge shapes (0-d, size-1 dimensions), and keep non-smooth ops (abs, relu, clamp, max ...) away
// from their kinks, where central differences are meaningless. Each op also has its benchmark
// inputs (float32, realistic sizes: a batch-256 activation [256, 1024], logits [256, 1000], a
// [256, 512] × [512, 512] product), made by their own generator so that running a benchmark never
// changes the gradcheck samples.
#include "autograd/registry.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <stdexcept>

#include "autograd/functions.hpp"
#include "autograd/random.hpp"

namespace tapegrad {
namespace {

std::vector<OpInfo>& table() {
  static std::vector<OpInfo> ops;
  return ops;
}

Generator& sample_gen() {
  static Generator g(2024);
  return g;
}

/// A float64 leaf requiring grad with normal values.
Tensor X(const Shape& s) { return randn(s, DType::f64, sample_gen()).requires_grad_(); }
/// Positive values in [0.5, 2] (log, sqrt, pow bases, divisors).
Tensor P(const Shape& s) { return rand(s, DType::f64, sample_gen(), 0.5, 2.0).requires_grad_(); }
/// Values at least 0.1 away from 0 (kinks of abs, relu, sign-based ops).
Tensor K(const Shape& s) {
  Tensor t = randn(s, DType::f64, sample_gen());
  double* p = t.mutable_data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] += p[i] >= 0 ? 0.1 : -0.1;
  return t.requires_grad_();
}
/// Distinct values (no ties), shuffled: for max/min.
Tensor D(const Shape& s) {
  Tensor t = Tensor::empty(s, DType::f64);
  int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) t.mutable_data<double>()[i] = 0.37 * static_cast<double>((i * 7 + 3) % std::max<int64_t>(n, 1)) - 1.0;
  return t.requires_grad_();
}

// ---- benchmark inputs: float32 ----
const Shape kAct{256, 1024};     // a hidden activation at batch 256
const Shape kLogits{256, 1000};  // logits over 1000 classes at batch 256
Tensor B(const Shape& s) { return bench_randn(s); }
Tensor BP(const Shape& s) { return bench_rand(s, 0.5, 2.0); }
using Maker = Tensor (*)(const Shape&);
/// The float32 benchmark twin of a sample maker: positive values for P, normal ones otherwise.
Maker bench_twin(Maker make) { return make == P ? BP : B; }
/// One input made by `make` at `shape`.
std::function<OpBench()> bench1(Maker make, Shape shape) {
  return [make, shape] { return OpBench({make(shape)}); };
}

using Samples = std::vector<OpSample>;
using In = const std::vector<Tensor>&;

/// Binary broadcasting cases shared by the arithmetic ops.
Samples binary_samples(Tensor (*make_a)(const Shape&), Tensor (*make_b)(const Shape&)) {
  return {{{make_a({3, 4}), make_b({3, 4})}, "same shape"},
          {{make_a({3, 4}), make_b({4})}, "row broadcast"},
          {{make_a({2, 1, 4}), make_b({3, 1})}, "both broadcast"},
          {{make_a({}), make_b({3})}, "0-d with 1-D"},
          {{make_a({1}), make_b({2, 3})}, "size-1 with 2-D"}};
}
Samples unary_samples(Tensor (*make)(const Shape&)) {
  return {{{make({3, 4})}, "2-D"}, {{make({})}, "0-d"}, {{make({2, 1, 3})}, "3-D"}};
}

/// Elementwise ops are benchmarked on [256, 1024] operands of the same shape.
void add_unary(const char* name, TensorFunction fn, Tensor (*make)(const Shape&), bool gradgrad = true) {
  table().push_back({name, "elementwise", std::move(fn), [make] { return unary_samples(make); }, gradgrad, 1e-5, 1e-3,
                     bench1(bench_twin(make), kAct)});
}
void add_binary(const char* name, TensorFunction fn, Tensor (*a)(const Shape&), Tensor (*b)(const Shape&)) {
  auto ba = bench_twin(a), bb = bench_twin(b);
  table().push_back({name, "elementwise", std::move(fn), [a, b] { return binary_samples(a, b); }, true, 1e-5, 1e-3,
                     [ba, bb] { return OpBench({ba(kAct), bb(kAct)}); }});
}
void add_op(const char* name, const char* family, TensorFunction fn, std::function<Samples()> samples,
            std::function<OpBench()> bench) {
  table().push_back({name, family, std::move(fn), std::move(samples), true, 1e-5, 1e-3, std::move(bench)});
}

void register_builtins() {
  // elementwise
  add_binary("add", [](In x) { return add(x[0], x[1]); }, X, X);
  add_binary("sub", [](In x) { return sub(x[0], x[1]); }, X, X);
  add_binary("mul", [](In x) { return mul(x[0], x[1]); }, X, X);
  add_binary("div", [](In x) { return div(x[0], x[1]); }, X, P);
  add_binary("pow", [](In x) { return pow(x[0], x[1]); }, P, X);
  add_binary("maximum", [](In x) { return maximum(x[0], x[1]); }, K, X);
  add_binary("minimum", [](In x) { return minimum(x[0], x[1]); }, K, X);
  add_unary("add_scalar", [](In x) { return x[0] + 2.5; }, X);
  add_unary("sub_scalar", [](In x) { return x[0] - 2.5; }, X);
  add_unary("mul_scalar", [](In x) { return x[0] * -1.5; }, X);
  add_unary("div_scalar", [](In x) { return x[0] / 4.0; }, X);
  add_unary("rsub", [](In x) { return 1.0 - x[0]; }, X);
  add_unary("rdiv", [](In x) { return 2.0 / x[0]; }, P);
  add_unary("pow_scalar", [](In x) { return pow(x[0], 3.0); }, X);
  add_unary("pow_square", [](In x) { return pow(x[0], 2.0); }, X);
  add_unary("pow_fractional", [](In x) { return pow(x[0], 1.5); }, P);
  add_unary("neg", [](In x) { return neg(x[0]); }, X);
  add_unary("exp", [](In x) { return exp(x[0]); }, X);
  add_unary("log", [](In x) { return log(x[0]); }, P);
  add_unary("sqrt", [](In x) { return sqrt(x[0]); }, P);
  add_unary("abs", [](In x) { return abs(x[0]); }, K);
  add_unary("sin", [](In x) { return sin(x[0]); }, X);
  add_unary("cos", [](In x) { return cos(x[0]); }, X);
  add_unary("tanh", [](In x) { return tanh(x[0]); }, X);
  add_unary("sigmoid", [](In x) { return sigmoid(x[0]); }, X);
  add_unary("erf", [](In x) { return erf(x[0]); }, X);
  add_unary("relu", [](In x) { return relu(x[0]); }, K);
  add_unary("leaky_relu", [](In x) { return leaky_relu(x[0], 0.2); }, K);
  add_unary("gelu", [](In x) { return gelu(x[0]); }, X);
  add_unary("gelu_tanh", [](In x) { return gelu(x[0], GeluApproximate::tanh); }, X);
  add_unary("softplus", [](In x) { return softplus(x[0], 1.5, 20.0); }, X);
  add_unary("clamp", [](In x) { return clamp(x[0], -0.05, 0.05); }, K);
  add_unary("clone", [](In x) { return x[0].clone(); }, X);
  add_op("where", "elementwise", [](In x) { return where(gt(x[0], 0.0), x[1], x[2]); }, [] {
    return Samples{{{K({3, 4}), X({3, 4}), X({3, 4})}, "same shape"},
                   {{K({3, 4}), X({4}), X({3, 1})}, "broadcast"},
                   {{K({3, 4}), X({3, 4}), index_tensor({-1, 2, 0, 5})}, "int64 branch promoted"}};
  }, [] { return OpBench({bench_randn(kAct, false), B(kAct), B(kAct)}); });
  add_op("masked_fill", "elementwise", [](In x) { return masked_fill(x[0], x[1], -2.5); }, [] {
    return Samples{{{X({3, 4}), tensor({1, 0, 0, 1}, {4}, DType::b8)}, "row mask"},
                   {{X({2, 3}), tensor({1, 0, 1, 1, 0, 0}, {2, 3}, DType::b8)}, "full mask"}};
  }, [] { return OpBench({B(kAct), gt(bench_randn({1024}, false), 0.0)}); });
  // Promotion: the float64 input's gradient through an op whose other operand is int64 / bool / float32.
  add_op("mul_promote", "elementwise", [](In x) { return mul(x[0], x[1]); }, [] {
    return Samples{{{X({3, 4}), index_tensor({1, -2, 3, 0})}, "int64"},
                   {{X({2, 2}), tensor({1, 0}, {2}, DType::b8)}, "bool"},
                   {{X({3}), tensor({0.5, -1.5, 2}, DType::f32)}, "float32"}};
  }, [] { return OpBench({B(kAct), bench_indices({1024}, 5)}); });
  add_op("add_promote_0d", "elementwise", [](In x) { return add(x[0], x[1]); },
         [] { return Samples{{{X({}), index_tensor({1, 2, 3})}, "0-d float64 with int64"}}; },
         [] { return OpBench({B({}), bench_indices(kAct, 5)}); });
  add_op("remainder", "elementwise", [](In x) { return remainder(x[0], x[1]); }, [] {
    Tensor neg_b = rand({4}, DType::f64, sample_gen(), -2.0, -0.5).requires_grad_();
    return Samples{{{X({3, 4}), P({3, 4})}, "same shape"}, {{X({3, 4}), neg_b}, "negative divisor"}};
  }, [] { return OpBench({B(kAct), BP(kAct)}); });
  add_unary("remainder_scalar", [](In x) { return remainder(x[0], 0.7); }, X);

  // reductions
  add_op("sum", "reduce", [](In x) { return sum(x[0]); }, [] { return unary_samples(X); },
         bench1(B, kAct));
  add_op("sum_axis", "reduce", [](In x) { return sum(x[0], {1}); }, [] { return Samples{{{X({3, 4})}, "axis 1"}, {{X({2, 3, 4})}, "3-D"}}; },
         bench1(B, kAct));
  add_op("sum_axes_keepdim", "reduce", [](In x) { return sum(x[0], {0, -1}, true); },
         [] { return Samples{{{X({2, 3, 4})}, "axes 0,-1"}}; },
         bench1(B, {16, 256, 64}));
  add_op("mean", "reduce", [](In x) { return mean(x[0], {0}); }, [] { return Samples{{{X({3, 4})}, "axis 0"}}; },
         bench1(B, kAct));
  add_op("mean_all", "reduce", [](In x) { return mean(x[0]); }, [] { return unary_samples(X); },
         bench1(B, kAct));
  add_op("max", "reduce", [](In x) { return max(x[0], {1}); }, [] { return Samples{{{D({3, 4})}, "axis 1"}, {{D({2, 3, 2})}, "3-D"}}; },
         bench1(B, kAct));
  add_op("max_all", "reduce", [](In x) { return max(x[0]); }, [] { return Samples{{{D({3, 4})}, "all"}}; },
         bench1(B, kAct));
  add_op("min", "reduce", [](In x) { return min(x[0], {0}, true); }, [] { return Samples{{{D({3, 4})}, "axis 0 keepdim"}}; },
         bench1(B, kAct));
  add_op("var", "reduce", [](In x) { return var(x[0], {1}); }, [] { return Samples{{{X({3, 5})}, "axis 1"}}; },
         bench1(B, kAct));
  add_op("var_all_biased", "reduce", [](In x) { return var(x[0], {}, 0); }, [] { return Samples{{{X({2, 3})}, "all"}}; },
         bench1(B, kAct));
  add_op("logsumexp", "reduce", [](In x) { return logsumexp(x[0], {-1}); },
         [] { return Samples{{{X({3, 4})}, "last axis"}, {{X({2, 3, 4})}, "3-D"}}; },
         bench1(B, kLogits));
  add_op("logsumexp_keepdim", "reduce", [](In x) { return logsumexp(x[0], {0}, true); },
         [] { return Samples{{{X({3, 4})}, "axis 0"}}; },
         bench1(B, kLogits));

  // linear algebra
  add_op("matmul", "linalg", [](In x) { return matmul(x[0], x[1]); }, [] {
    return Samples{{{X({3, 4}), X({4, 5})}, "2-D"},
                   {{X({4}), X({4})}, "1-D dot"},
                   {{X({3, 4}), X({4})}, "matrix-vector"},
                   {{X({4}), X({4, 2})}, "vector-matrix"},
                   {{X({2, 3, 4}), X({4, 2})}, "batched with 2-D"},
                   {{X({2, 1, 3, 4}), X({3, 4, 2})}, "broadcast batch"}};
  }, [] { return OpBench({B({256, 512}), B({512, 512})}); });
  for (int flags = 0; flags < 4; ++flags) {
    bool ta = flags & 1, tb = flags & 2;
    std::string name = std::string("gemm_") + (ta ? "t" : "n") + (tb ? "t" : "n");
    table().push_back({name, "linalg", [ta, tb](In x) { return gemm(x[0], x[1], ta, tb); }, [ta, tb] {
                         Shape a = ta ? Shape{4, 3} : Shape{3, 4}, b = tb ? Shape{2, 4} : Shape{4, 2};
                         Shape a3 = ta ? Shape{2, 4, 3} : Shape{2, 3, 4}, b3 = tb ? Shape{2, 2, 4} : Shape{2, 4, 2};
                         return Samples{{{X(a), X(b)}, "2-D"}, {{X(a3), X(b3)}, "batched"}};
                       },
                       true, 1e-5, 1e-3, [ta, tb] {  // [256, 512] · [512, 512], transposed as stored
                         return OpBench({B(ta ? Shape{512, 256} : Shape{256, 512}), B({512, 512})});
                       }});
  }

  // shape
  add_op("reshape", "shape", [](In x) { return reshape(x[0], {4, -1}); }, [] { return Samples{{{X({2, 3, 2})}, "3-D"}}; },
         bench1(B, kAct));
  add_op("flatten", "shape", [](In x) { return flatten(x[0], 1); }, [] { return Samples{{{X({2, 3, 2})}, "from dim 1"}}; },
         bench1(B, {256, 16, 64}));
  add_op("transpose", "shape", [](In x) { return transpose(x[0], 0, -1); }, [] { return Samples{{{X({2, 3, 4})}, "3-D"}}; },
         bench1(B, {32, 64, 128}));
  add_op("permute", "shape", [](In x) { return permute(x[0], {2, 0, 1}); }, [] { return Samples{{{X({2, 3, 4})}, "3-D"}}; },
         bench1(B, {32, 64, 128}));
  add_op("squeeze", "shape", [](In x) { return squeeze(x[0], 1); }, [] { return Samples{{{X({3, 1, 2})}, "middle"}}; },
         bench1(B, {256, 1, 1024}));
  add_op("unsqueeze", "shape", [](In x) { return unsqueeze(x[0], -1); }, [] { return Samples{{{X({3, 2})}, "last"}}; },
         bench1(B, kAct));
  add_op("expand", "shape", [](In x) { return expand(x[0], {2, 3, 4}); },
         [] { return Samples{{{X({3, 1})}, "[3,1]"}, {{X({})}, "0-d"}, {{X({4})}, "[4]"}}; },
         [] { return OpBench({B({1, 1024})}, [](In x) { return expand(x[0], {256, 1024}); }); });
  add_op("slice", "shape", [](In x) { return slice(x[0], 1, -4, 5, 2); }, [] { return Samples{{{X({2, 6, 2})}, "step 2"}}; },
         [] { return OpBench({B(kAct)}, [](In x) { return slice(x[0], 1, 0, 1024, 2); }); });
  add_op("slice_rows", "shape", [](In x) { return slice(x[0], 0, 1, 3); }, [] { return Samples{{{X({4, 3})}, "view"}}; },
         [] { return OpBench({B(kAct)}, [](In x) { return slice(x[0], 0, 0, 128); }); });
  add_op("slice_backward", "shape", [](In x) { return slice_backward(x[0], {2, 5}, 1, 1, 5, 2); },
         [] { return Samples{{{X({2, 2})}, "step 2"}}; },
         [] { return OpBench({B({256, 512})}, [](In x) { return slice_backward(x[0], kAct, 1, 0, 1024, 2); }); });
  add_op("cat", "shape", [](In x) { return cat({x[0], x[1], x[2]}, 1); },
         [] { return Samples{{{X({2, 1}), X({2, 3}), X({2, 2})}, "dim 1"}}; },
         [] { return OpBench({B({256, 256}), B({256, 512}), B({256, 256})}); });
  add_op("stack", "shape", [](In x) { return stack({x[0], x[1]}, 0); }, [] { return Samples{{{X({2, 3}), X({2, 3})}, "dim 0"}}; },
         [] { return OpBench({B(kAct), B(kAct)}); });
  add_op("index_select", "shape", [](In x) { return index_select(x[0], 0, x[1]); },
         [] { return Samples{{{X({4, 3}), index_tensor({3, 0, 3})}, "repeated rows"}}; },
         [] { return OpBench({B({1000, 512}), bench_indices({256}, 1000)}); });
  add_op("index_add", "shape", [](In x) { return index_add({4, 3}, 0, x[1], x[0]); },
         [] { return Samples{{{X({3, 3}), index_tensor({3, 0, 3})}, "repeated rows"}}; },
         [] { return OpBench({B({256, 512}), bench_indices({256}, 1000)}, [](In x) { return index_add({1000, 512}, 0, x[1], x[0]); }); });
  add_op("gather", "shape", [](In x) { return gather(x[0], 1, x[1]); },
         [] { return Samples{{{X({3, 4}), index_tensor({0, 3, 1, 1, 2, 2}, {3, 2})}, "dim 1"}}; },
         [] { return OpBench({B(kLogits), bench_indices({256, 1}, 1000)}); });
  add_op("scatter_add", "shape", [](In x) { return scatter_add({3, 4}, 1, x[1], x[0]); },
         [] { return Samples{{{X({3, 2}), index_tensor({0, 3, 1, 1, 2, 2}, {3, 2})}, "dim 1"}}; },
         [] { return OpBench({B({256, 1}), bench_indices({256, 1}, 1000)}, [](In x) { return scatter_add(kLogits, 1, x[1], x[0]); }); });

  // indexing, triangles, scans, sorting
  add_op("tril", "index", [](In x) { return tril(x[0]); }, [] { return Samples{{{X({3, 4})}, "2-D"}, {{X({2, 3, 3})}, "batched"}}; },
         bench1(B, {8, 256, 256}));
  add_op("tril_offset", "index", [](In x) { return tril(x[0], -1); }, [] { return Samples{{{X({4, 3})}, "below"}}; },
         bench1(B, {8, 256, 256}));
  add_op("triu", "index", [](In x) { return triu(x[0], 1); }, [] { return Samples{{{X({3, 4})}, "above"}, {{X({2, 2, 3})}, "batched"}}; },
         bench1(B, {8, 256, 256}));
  add_op("cumsum", "index", [](In x) { return cumsum(x[0], 1); },
         [] { return Samples{{{X({3, 4})}, "dim 1"}, {{X({2, 3, 2})}, "middle of 3-D"}}; },
         bench1(B, kAct));
  add_op("cumsum_dim0", "index", [](In x) { return cumsum(x[0], 0); }, [] { return Samples{{{X({4})}, "1-D"}, {{X({})}, "0-d"}}; },
         bench1(B, kAct));
  add_op("sort", "index", [](In x) { return sort(x[0], -1).values; }, [] { return Samples{{{D({3, 4})}, "rows"}, {{D({2, 3, 2})}, "3-D"}}; },
         bench1(B, kAct));
  add_op("sort_descending_dim0", "index", [](In x) { return sort(x[0], 0, true).values; },
         [] { return Samples{{{D({4, 3})}, "columns"}}; },
         bench1(B, kAct));
  add_op("topk", "index", [](In x) { return topk(x[0], 2).values; }, [] { return Samples{{{D({3, 5})}, "rows"}}; },
         bench1(B, kLogits));
  add_op("topk_smallest_dim0", "index", [](In x) { return topk(x[0], 3, 0, false).values; },
         [] { return Samples{{{D({4, 2})}, "columns"}}; },
         bench1(B, kLogits));

  // softmax family
  add_op("softmax", "softmax", [](In x) { return softmax(x[0], -1); },
         [] { return Samples{{{X({3, 4})}, "rows"}, {{X({2, 3, 2})}, "3-D"}}; },
         bench1(B, kLogits));
  add_op("softmax_axis0", "softmax", [](In x) { return softmax(x[0], 0); }, [] { return Samples{{{X({3, 4})}, "columns"}}; },
         bench1(B, kLogits));
  add_op("log_softmax", "softmax", [](In x) { return log_softmax(x[0], -1); },
         [] { return Samples{{{X({3, 4})}, "rows"}, {{X({2, 3, 2})}, "3-D"}}; },
         bench1(B, kLogits));
  add_op("log_softmax_axis1", "softmax", [](In x) { return log_softmax(x[0], 1); },
         [] { return Samples{{{X({2, 3, 2})}, "middle"}}; },
         bench1(B, {32, 1000, 8}));
}

std::once_flag builtins_once;

/// The queued groups (register_op_group) and those already queued once. Groups run under a recursive
/// mutex: a group's own register_op calls come back into ensure_registered on the same thread, and
/// another thread asking for the registry meanwhile waits until the group has finished.
std::recursive_mutex& groups_mutex() {
  static std::recursive_mutex m;
  return m;
}
std::vector<void (*)()>& pending_groups() {
  static std::vector<void (*)()> groups;
  return groups;
}
std::vector<void (*)()>& known_groups() {
  static std::vector<void (*)()> groups;
  return groups;
}

/// Built-ins first, then every queued group, in the order they were queued.
void ensure_registered() {
  std::call_once(builtins_once, register_builtins);
  std::lock_guard<std::recursive_mutex> lock(groups_mutex());
  while (!pending_groups().empty()) {
    void (*group)() = pending_groups().front();
    pending_groups().erase(pending_groups().begin());
    group();
  }
}

Generator& bench_gen() {
  static Generator g(4096);
  return g;
}

}  // namespace

Tensor bench_randn(const Shape& shape, bool requires_grad) {
  Tensor t = randn(shape, DType::f32, bench_gen());
  return requires_grad ? t.requires_grad_() : t;
}
Tensor bench_rand(const Shape& shape, double low, double high, bool requires_grad) {
  Tensor t = rand(shape, DType::f32, bench_gen(), low, high);
  return requires_grad ? t.requires_grad_() : t;
}
Tensor bench_indices(const Shape& shape, int64_t high) {
  if (high < 1) throw std::invalid_argument("tapegrad::bench_indices: high must be at least 1, got " + std::to_string(high));
  Tensor t = Tensor::empty(shape, DType::i64);
  int64_t* p = t.mutable_data<int64_t>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<int64_t>(bench_gen().below(static_cast<uint64_t>(high)));
  return t;
}

void register_op_group(void (*group)()) {
  if (!group) throw std::invalid_argument("tapegrad::register_op_group: the group function is null");
  std::lock_guard<std::recursive_mutex> lock(groups_mutex());
  if (std::find(known_groups().begin(), known_groups().end(), group) != known_groups().end()) return;
  known_groups().push_back(group);
  pending_groups().push_back(group);
}

void register_op(OpInfo info) {
  ensure_registered();
  if (info.name.empty() || !info.fn || !info.samples)
    throw std::invalid_argument("tapegrad::register_op: op '" + info.name + "' needs a name, a function and samples (" +
                                (info.name.empty() ? "no name" : !info.fn ? "no function" : "no samples") + ")");
  for (auto& op : table())
    if (op.name == info.name) {
      op = std::move(info);
      return;
    }
  table().push_back(std::move(info));
}

const std::vector<OpInfo>& op_registry() {
  ensure_registered();
  return table();
}

const OpInfo& find_op(const std::string& name) {
  for (auto& op : op_registry())
    if (op.name == name) return op;
  throw std::out_of_range("tapegrad::find_op: no op named '" + name + "' is registered");
}

}  // namespace tapegrad
