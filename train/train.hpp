#pragma once
/// \file train.hpp
/// Umbrella header of tapegrad::train, the training layer above nn, optim and datasets: the loop
/// (fit, evaluate, predict) with its callbacks, metrics and resumable run states.
#include "train/fit.hpp"
#include "train/metrics.hpp"
#include "train/run_state.hpp"
