#pragma once
/// \file tapegrad.hpp
/// Umbrella header of the whole library: the core engine (tensors, ops, the tape, gradcheck, the
/// op registry), nn (modules, layers, losses), optim (optimizers, schedulers), datasets, distributed
/// (MPI collectives, data-parallel training) and train (fit, evaluate, callbacks, metrics, run states,
/// federated averaging).
///
/// An installed tapegrad is included as `#include <tapegrad/tapegrad.hpp>` (or one part:
/// `<tapegrad/autograd/autograd.hpp>`, `<tapegrad/nn/nn.hpp>`...); inside the source tree the same
/// headers are `"autograd/autograd.hpp"`... Both forms work with the installed tree and with
/// `add_subdirectory`; the `<tapegrad/...>` form is the canonical one for code outside tapegrad.
#include "autograd/autograd.hpp"
#include "datasets/datasets.hpp"
#include "distributed/distributed.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"
#include "train/train.hpp"
