#include "autograd/checkpoint.hpp"

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "autograd/engine.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"

namespace tapegrad {
namespace {

constexpr const char* kWho = "tapegrad::checkpoint";

/// The generators fn draws from, with their state at the first call.
struct GeneratorStates {
  std::vector<std::pair<Generator*, Generator>> saved;

  explicit GeneratorStates(const CheckpointOptions& options) {
    saved.emplace_back(&default_generator(), default_generator());
    for (Generator* g : options.generators) {
      if (!g) throw std::invalid_argument(std::string(kWho) + ": options.generators holds a null pointer");
      bool seen = false;
      for (auto& [p, state] : saved) seen = seen || p == g;
      if (!seen) saved.emplace_back(g, *g);
    }
  }
  /// Sets every generator back to its saved state.
  void restore() const {
    for (auto& [p, state] : saved) *p = state;
  }
};

/// Replays `states` for its lifetime, then puts the generators back as they were.
class ReplayGenerators {
 public:
  explicit ReplayGenerators(const GeneratorStates& states) {
    for (auto& [p, state] : states.saved) now_.emplace_back(p, *p);
    states.restore();
  }
  ~ReplayGenerators() {
    for (auto& [p, state] : now_) *p = state;
  }
  ReplayGenerators(const ReplayGenerators&) = delete;
  ReplayGenerators& operator=(const ReplayGenerators&) = delete;

 private:
  std::vector<std::pair<Generator*, Generator>> now_;
};

/// A 64-bit hash of a tensor's bytes (and shape and dtype), to compare a recomputed output with
/// the first one without keeping it.
uint64_t hash_tensor(const Tensor& t) {
  const void* data =
      kernels::dispatch_all(t.dtype(), [&](auto z) -> const void* { return t.data<decltype(z)>(); });
  const auto* bytes = static_cast<const unsigned char*>(data);
  const size_t n = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (static_cast<uint64_t>(t.dtype()) << 56);
  for (int64_t d : t.shape()) h = (h ^ static_cast<uint64_t>(d)) * 0xbf58476d1ce4e5b9ull;
  // Four independent lanes of 8-byte words (multiply-xor), combined at the end.
  uint64_t lane[4] = {h, h ^ 1, h ^ 2, h ^ 3};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k) {
      uint64_t w;
      std::memcpy(&w, bytes + i + 8 * k, 8);
      lane[k] = (lane[k] ^ w) * 0x94d049bb133111ebull;
      lane[k] ^= lane[k] >> 29;
    }
  for (; i < n; ++i) lane[0] = (lane[0] ^ bytes[i]) * 0x100000001b3ull;
  for (int k = 1; k < 4; ++k) lane[0] = (lane[0] ^ lane[k]) * 0xbf58476d1ce4e5b9ull;
  return lane[0] ^ (lane[0] >> 31);
}

/// Fresh leaves over the inputs' storage: the graph fn records starts at them, not at the inputs'
/// own history. Those that require grad are marked so (their gradients are what backward returns).
std::vector<Tensor> stand_ins(const std::vector<Tensor>& inputs) {
  std::vector<Tensor> out;
  out.reserve(inputs.size());
  for (const Tensor& x : inputs) {
    Tensor s = x.detach();
    if (x.requires_grad()) s.requires_grad_();
    out.push_back(std::move(s));
  }
  return out;
}

std::string describe(const Tensor& t) { return std::string(dtype_name(t.dtype())) + " " + to_string(t.shape()); }

/// Calls fn with recording on (the caller sets the generators).
std::vector<Tensor> call(const CheckpointFunction& fn, const std::vector<Tensor>& args) {
  GradModeGuard recording(true);
  return fn(args);
}

/// What the checkpoint's nodes share: fn, how to replay it, and the outputs' gradients on their
/// way from the checkpoint_output nodes to the checkpoint node.
struct State {
  CheckpointFunction fn;
  GeneratorStates generators;
  size_t n_inputs = 0;
  std::vector<uint64_t> hashes;  // per output, when verifying
  bool verify = true;
  std::vector<Tensor> output_grads;  // per output; set by its checkpoint_output node
};

/// The checkpoint node's backward: recompute, back-propagate through the recomputed graph.
Grads recompute_backward(State& state, const BackwardContext& ctx) {
  if (grad_enabled())
    throw AutogradError(std::string(kWho) +
                        ": create_graph=true (higher-order gradients) through a checkpoint is not supported; "
                        "differentiate the function without checkpoint");
  std::vector<Tensor> output_grads(state.output_grads.size());
  output_grads.swap(state.output_grads);  // empty again for the next backward, whatever happens

  const size_t n_edges = ctx.node.next().size();
  std::vector<Tensor> inputs(state.n_inputs);
  for (size_t i = 0; i < state.n_inputs; ++i) inputs[i] = ctx.saved(i);
  const std::vector<Tensor> args = stand_ins(inputs);
  std::vector<Tensor> outputs;
  {
    ReplayGenerators replay(state.generators);
    outputs = call(state.fn, args);
  }
  if (outputs.size() != output_grads.size())
    throw AutogradError(std::string(kWho) + ": recomputing fn returned " + std::to_string(outputs.size()) +
                        " tensors, the first call " + std::to_string(output_grads.size()));
  std::vector<Tensor> roots, seeds;
  for (size_t k = 0; k < outputs.size(); ++k) {
    if (state.verify && (!outputs[k].defined() || hash_tensor(outputs[k]) != state.hashes[k]))
      throw AutogradError(std::string(kWho) + ": recomputing fn gave a different output " + std::to_string(k) +
                          " than its first call: fn is not deterministic (it draws from a generator that is not "
                          "in CheckpointOptions::generators, or reads state that changed since)");
    if (!output_grads[k].defined()) continue;
    if (!outputs[k].defined() || !outputs[k].requires_grad())
      throw AutogradError(std::string(kWho) + ": recomputing fn gave output " + std::to_string(k) +
                          " without a gradient path, unlike its first call");
    roots.push_back(outputs[k]);
    seeds.push_back(std::move(output_grads[k]));
  }

  // The gradients wanted: those of the stand-ins and parameters whose edge the outer pass needs.
  std::vector<Tensor> targets;
  std::vector<size_t> where;
  for (size_t e = 0; e < n_edges; ++e) {
    if (!ctx.needs(e)) continue;
    targets.push_back(e < state.n_inputs ? args[e] : ctx.saved(e));
    where.push_back(e);
  }
  Grads grads(n_edges);
  if (roots.empty() || targets.empty()) return grads;
  std::vector<Tensor> got = grad(roots, targets, seeds, /*retain_graph=*/false, /*create_graph=*/false,
                                 /*allow_unused=*/true);
  for (size_t t = 0; t < targets.size(); ++t) grads[where[t]] = std::move(got[t]);
  return grads;
}

/// The parameters (leaves that require grad, other than the stand-ins) that fn's graph reaches
/// from `outputs`; throws when it reaches a node recorded before fn ran (a captured tensor with
/// a history of its own).
std::vector<Tensor> find_parameters(const std::vector<Tensor>& outputs, const std::vector<Tensor>& args,
                                    uint64_t first_seq) {
  std::unordered_set<const TensorImpl*> stand_in_impls;
  for (const Tensor& a : args) stand_in_impls.insert(a.impl().get());
  std::vector<Tensor> params;
  std::unordered_set<const Node*> seen;
  std::vector<const Node*> stack;
  for (const Tensor& y : outputs)
    if (y.grad_fn() && seen.insert(y.grad_fn().get()).second) stack.push_back(y.grad_fn().get());
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    for (const auto& e : n->next()) {
      if (!e || !seen.insert(e.get()).second) continue;
      if (e->is_accumulator()) {
        Tensor leaf = detail::accumulator_leaf(*e);
        if (leaf.defined() && !stand_in_impls.count(leaf.impl().get())) params.push_back(std::move(leaf));
      } else if (e->sequence() > first_seq) {
        stack.push_back(e.get());
      } else {
        throw std::invalid_argument(std::string(kWho) +
                                    ": fn uses a tensor that requires grad and was computed "
                                    "outside it (the output of '" +
                                    e->name() + "', " + std::string(dtype_name(e->dtype())) + " " +
                                    to_string(e->shape()) +
                                    "); pass it through `inputs` so that its gradient reaches its own graph");
      }
    }
  }
  return params;
}

/// Throws unless every output is a tensor fn computed (recorded) from its inputs or parameters.
void check_outputs(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                   const std::vector<Tensor>& args, uint64_t first_seq) {
  if (outputs.empty()) throw std::invalid_argument(std::string(kWho) + ": fn returned no tensor");
  bool any_recorded = false;
  for (const Tensor& y : outputs)
    any_recorded = any_recorded || (y.defined() && y.grad_fn() && y.grad_fn()->sequence() > first_seq);
  if (!any_recorded) {
    bool any_input_requires_grad = false;
    for (const Tensor& x : inputs) any_input_requires_grad = any_input_requires_grad || x.requires_grad();
    throw std::invalid_argument(std::string(kWho) + ": fn recorded nothing: none of its " +
                                std::to_string(outputs.size()) +
                                " output(s) was computed by an op on a tensor that requires grad (" +
                                (any_input_requires_grad ? "it does not compute its outputs from its inputs"
                                                         : "no input requires grad, and no parameter it uses does") +
                                "); call fn directly, or under no_grad");
  }
  for (size_t k = 0; k < outputs.size(); ++k) {
    const Tensor& y = outputs[k];
    const std::string which = "output " + std::to_string(k);
    if (!y.defined()) throw std::invalid_argument(std::string(kWho) + ": fn's " + which + " is undefined");
    for (size_t i = 0; i < inputs.size(); ++i)
      if (y.is_same(args[i]) || y.is_same(inputs[i]))
        throw std::invalid_argument(std::string(kWho) + ": fn's " + which + " is input " + std::to_string(i) +
                                    " itself; return only tensors fn computes from its inputs");
    if (!y.requires_grad())
      throw std::invalid_argument(std::string(kWho) + ": fn's " + which + " (" + describe(y) +
                                  ") does not require grad: it was not computed from the inputs or parameters "
                                  "(a constant, or computed under no_grad)");
    if (!y.grad_fn() || y.grad_fn()->sequence() <= first_seq)
      throw std::invalid_argument(
          std::string(kWho) + ": fn's " + which + " (" + describe(y) + ") was not produced from its inputs: it is " +
          (y.grad_fn()
               ? "the output of '" + std::string(y.grad_fn()->name()) + "', computed before checkpoint was called"
               : std::string("a leaf (a parameter)")));
  }
}

}  // namespace

std::vector<Tensor> checkpoint(const CheckpointFunction& fn, const std::vector<Tensor>& inputs,
                               const CheckpointOptions& options) {
  if (!fn) throw std::invalid_argument(std::string(kWho) + ": fn is empty");
  for (size_t i = 0; i < inputs.size(); ++i)
    if (!inputs[i].defined())
      throw std::invalid_argument(std::string(kWho) + ": input " + std::to_string(i) + " is undefined");
  if (!grad_enabled()) return fn(inputs);  // nothing is recorded, so nothing is kept either

  auto state = std::make_shared<State>(State{fn, GeneratorStates(options), inputs.size(), {}, options.verify, {}});
  std::vector<uint64_t> versions;
  for (const Tensor& x : inputs) versions.push_back(x.version());
  const std::vector<Tensor> args = stand_ins(inputs);
  const uint64_t first_seq = detail::next_sequence();
  std::vector<Tensor> outputs;
  std::vector<Tensor> params;
  try {
    outputs = call(fn, args);
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].version() != versions[i])
        throw std::invalid_argument(std::string(kWho) + ": fn wrote in place into input " + std::to_string(i) + " (" +
                                    describe(inputs[i]) + "); the recomputation would see other values");
    check_outputs(outputs, inputs, args, first_seq);
    params = find_parameters(outputs, args, first_seq);
  } catch (...) {
    state->generators.restore();  // as if fn had not run
    throw;
  }
  if (state->verify)
    for (const Tensor& y : outputs) state->hashes.push_back(hash_tensor(y));
  state->output_grads.resize(outputs.size());

  // The checkpoint node: inputs and parameters in (saved, so their versions are checked before
  // the backward), a 0-d token out that carries no value, only the edge to the outputs' nodes.
  std::vector<Tensor> edges = inputs;
  edges.insert(edges.end(), params.begin(), params.end());
  Tensor token = record("checkpoint", zeros({}), edges, save_for_backward(edges),
                        [state](const BackwardContext& ctx) { return recompute_backward(*state, ctx); });

  // Each output: fn's data without fn's graph, recorded on the token. Its node hands its gradient
  // to the checkpoint node (which runs after all of them: it was recorded first) and a zero to the
  // token, so that the checkpoint node runs whenever some output got a gradient.
  std::vector<Tensor> results;
  results.reserve(outputs.size());
  for (size_t k = 0; k < outputs.size(); ++k)
    results.push_back(
        record("checkpoint_output", outputs[k].detach(), {token}, [state, k](const BackwardContext& ctx) -> Grads {
          state->output_grads[k] = ctx.grad;
          return {zeros({})};
        }));
  return results;
}

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& input,
                  const CheckpointOptions& options) {
  if (!fn) throw std::invalid_argument(std::string(kWho) + ": fn is empty");
  return checkpoint([fn](const std::vector<Tensor>& in) { return std::vector<Tensor>{fn(in[0])}; }, {input},
                    options)[0];
}

}  // namespace tapegrad
