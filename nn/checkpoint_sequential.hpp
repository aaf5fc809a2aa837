#pragma once
/// \file checkpoint_sequential.hpp
/// Activation checkpointing of a Sequential, segment by segment (PyTorch's
/// torch.utils.checkpoint.checkpoint_sequential): the modules are split into `segments` runs of
/// consecutive modules; every run but the last goes through tapegrad::checkpoint
/// (autograd/checkpoint.hpp), so the forward keeps only each run's input and the backward
/// recomputes one run at a time. The last run is not checkpointed: the backward needs its
/// activations first.
///
///     nn::Sequential mlp(...32 Linear + ReLU pairs...);
///     Tensor y = nn::checkpoint_sequential(mlp, 8, x);   // √64 = 8 segments of 8 modules
///
/// For an n-module chain, k segments hold about k run inputs plus one run's activations (n/k
/// modules) at any time: k ≈ √n minimises that to O(√n), for about one extra forward.
/// Gradients are bitwise those of `sequential(x)`, Dropout included, provided every generator the
/// modules draw from besides default_generator() (a Dropout built with its own Generator) is in
/// `options.generators` (else the recomputation check of CheckpointOptions::verify throws).
/// Buffers too: the recomputation puts back those it changes, so a BatchNorm in training mode
/// updates its running statistics once per step, as without checkpointing (PyTorch 1.13's
/// checkpoint_sequential updates them twice).
#include <cstdint>

#include "autograd/checkpoint.hpp"
#include "nn/module.hpp"

namespace tapegrad::nn {

/// Runs `sequential` on `input` in `segments` checkpointed runs of consecutive modules (sizes
/// differ by at most one, the longer ones first). With recording off it is sequential(input).
/// A run whose modules have no parameter that requires grad, on an input that does not either,
/// runs as is (there is nothing to recompute for). `sequential` must outlive the backward (the
/// checkpoints call its modules again). Throws std::invalid_argument naming `segments` unless
/// 1 ≤ segments ≤ sequential.size().
Tensor checkpoint_sequential(Sequential& sequential, int64_t segments, const Tensor& input,
                             const CheckpointOptions& options = {});

/// ⌈√n⌉ clamped to [1, n]: the segment count that minimises checkpoint_sequential's memory for n
/// modules of similar size.
int64_t sqrt_segments(size_t n);

}  // namespace tapegrad::nn
