#pragma once
/// \file checkpoint.hpp
/// Activation checkpointing (Chen et al., 2016, "Training deep nets with sublinear memory cost";
/// PyTorch's torch.utils.checkpoint): trade compute for memory by keeping a function's inputs
/// instead of every activation inside it, and running the function again during backward.
/// (Not to be confused with a training run's saved state, train/run_state.hpp.)
///
///     // y = block(x) without keeping block's activations: they are recomputed in backward.
///     Tensor y = checkpoint([&](const std::vector<Tensor>& in) { return std::vector{block(in[0])}; }, {x})[0];
///     loss(y).backward();   // block runs again here, then its gradients flow as usual
///
/// How it works. `checkpoint(fn, inputs)` calls fn on stand-ins of the inputs (same storage, new
/// leaves), so the ops fn records form a graph of their own, which is walked once to find the
/// parameters fn uses (leaves that require grad, reached through fn's ops) and then dropped: only
/// the inputs, the parameters and fn itself stay. One node ("checkpoint") is recorded with the
/// inputs and the parameters as its inputs, and one "checkpoint_output" node per output. When the
/// backward reaches it, the checkpoint node restores the random generators to their state before
/// the first call (so Dropout draws the same masks), calls fn again on fresh stand-ins with
/// recording on, back-propagates the outputs' gradients through that recomputed graph (a nested
/// grad() towards the stand-ins and the parameters that need one), restores the generators, and
/// returns the gradients to the outer graph, where they accumulate like any op's. Gradients are
/// therefore bitwise those of the same code without checkpointing whenever every input and
/// parameter is used inside one checkpoint only (a tensor also used outside sums its gradient in
/// another order).
///
/// Memory. While fn runs, its activations are held (as they are again while it is recomputed);
/// after it returns, only its outputs, inputs and parameters are. Checkpointing k segments of an
/// n-layer chain thus holds about k boundary tensors plus one segment's activations (n/k layers):
/// k = √n gives O(√n) memory for about one extra forward.
///
/// Works with: several inputs and outputs, inputs that do not require grad (int64 indices, masks)
/// and non-tensor captures (anything fn's closure holds), nested checkpoints (fn may call
/// checkpoint), backward(retain_graph=true) (each backward recomputes), and first-order grad()
/// towards the inputs or the parameters (no .grad is touched). With recording off (no_grad) fn
/// simply runs. fn runs twice: any other state it writes (a training-mode BatchNorm's running
/// statistics) is written twice, as in PyTorch; nn::checkpoint_sequential puts module buffers back.
///
/// Errors (std::invalid_argument naming the argument, or AutogradError; nothing is recorded and
/// the generators are restored):
///   - an undefined input; fn returning no tensor or an undefined one;
///   - fn recording nothing (no input or parameter it uses requires grad, or it ran under no_grad);
///   - an output that fn did not compute from its inputs: an input returned as is, a parameter or
///     other tensor from outside fn, a tensor that does not require grad;
///   - fn using a tensor that requires grad and was computed outside fn (not a leaf): pass it
///     through `inputs` instead, so that its gradient reaches its own graph;
///   - fn writing in place into an input.
/// In backward (AutogradError): an input or parameter written in place between the forward and the
/// backward (the version counter, like any saved tensor: the error names "checkpoint", the input
/// and both versions); a recomputation that differs from the first run (checked by a hash of each
/// output, see CheckpointOptions::verify: a generator fn draws from that is not listed, or state
/// fn reads that changed); create_graph=true (higher-order gradients through a checkpoint are not
/// supported).
///
/// Not thread-safe for two concurrent backward passes through the same checkpoint (the outputs'
/// gradients meet in state the checkpoint node holds).
#include <functional>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace tapegrad {

/// What `checkpoint` calls: the (stand-ins of the) inputs in, the outputs out.
using CheckpointFunction = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;

/// Options of checkpoint(), with chainable setters.
struct CheckpointOptions {
  /// Generators fn draws from besides the calling thread's default_generator() (always saved and
  /// restored), e.g. the one a Dropout was built with. Their state is copied at the first call and
  /// replayed for the recomputation.
  std::vector<Generator*> generators{};
  /// Hash every output at the first call and compare when recomputing: a mismatch (a generator
  /// that is not listed, state fn reads that changed) throws instead of returning wrong gradients.
  /// Costs one pass over the outputs' bytes per call and per recomputation.
  bool verify = true;

  /// Replaces `generators` with `v`; returns *this.
  CheckpointOptions& set_generators(std::vector<Generator*> v) {
    generators = std::move(v);
    return *this;
  }
  /// Appends `g` (which must outlive the backward) to `generators`; returns *this.
  CheckpointOptions& add_generator(Generator& g) {
    generators.push_back(&g);
    return *this;
  }
  /// Sets `verify`; returns *this.
  CheckpointOptions& set_verify(bool v) {
    verify = v;
    return *this;
  }
};

/// Runs fn(inputs) keeping only its inputs for backward, where fn runs again (see the file
/// comment). Returns fn's outputs.
std::vector<Tensor> checkpoint(const CheckpointFunction& fn, const std::vector<Tensor>& inputs,
                               const CheckpointOptions& options = {});

/// One input, one output.
Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& input,
                  const CheckpointOptions& options = {});

}  // namespace tapegrad
