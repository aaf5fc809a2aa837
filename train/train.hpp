#pragma once
/// \file train.hpp
/// Umbrella header of tapegrad::train, the training layer above nn, optim and datasets: the loop
/// (fit, evaluate, predict), callbacks, the progress display, metrics and resumable run states.
#include "train/callbacks.hpp"
#include "train/federated.hpp"
#include "train/fit.hpp"
#include "train/history.hpp"
#include "train/metrics.hpp"
#include "train/progress.hpp"
#include "train/run_state.hpp"
