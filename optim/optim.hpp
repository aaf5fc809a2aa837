#pragma once
/// \file optim.hpp
/// Umbrella header of tapegrad::optim: SGD, Adam, AdamW, RMSprop, Adagrad, learning-rate
/// schedulers and gradient clipping.
#include "optim/adagrad.hpp"
#include "optim/adam.hpp"
#include "optim/clip.hpp"
#include "optim/optimizer.hpp"
#include "optim/rmsprop.hpp"
#include "optim/scheduler.hpp"
#include "optim/sgd.hpp"
