#pragma once
/// \file engine.hpp
/// The backward engine: collects the nodes reachable from the outputs (iteratively, so chains of
/// millions of ops work), replays them in reverse tape order, and delivers gradients to leaves.
#include <functional>
#include <vector>

#include "autograd/node.hpp"

namespace tapegrad {

/// Accumulates d(outputs)/d(leaf) into every reachable leaf's grad(). `grad_outputs` may be empty
/// when every output has one element; otherwise one per output, of its shape. Without
/// `retain_graph` (and `create_graph`) the saved tensors are freed and a second backward through
/// the same graph throws AutogradError naming the op.
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs = {},
              bool retain_graph = false, bool create_graph = false);

/// Runs `callback` when the backward() pass running on this thread has delivered every leaf's
/// gradient (after the last post-accumulate-grad hook), before backward() returns; callbacks run
/// in the order they were queued, once, and are dropped if the pass throws. Call it from inside
/// the pass: a post-accumulate-grad hook (Tensor::register_post_accumulate_grad_hook) or a
/// backward function. Throws AutogradError when no pass is running on this thread. PyTorch's
/// engine queue_callback; DistributedDataParallel waits for its all-reduces this way.
void queue_backward_callback(std::function<void()> callback);

/// Returns d(outputs)/d(inputs)·grad_outputs without touching any grad(). With `create_graph`
/// the result is itself differentiable (higher-order gradients); the graph is then retained.
/// An input the outputs do not depend on is an error unless `allow_unused` (then undefined).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool create_graph = false, bool allow_unused = false);

}  // namespace tapegrad
