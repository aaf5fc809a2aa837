#pragma once
/// \file autograd.hpp
/// Umbrella header of the core engine: tensors, ops, the tape, gradcheck and the op registry.
#include "autograd/blas.hpp"
#include "autograd/checkpoint.hpp"
#include "autograd/cpu.hpp"
#include "autograd/custom_op.hpp"
#include "autograd/debug.hpp"
#include "autograd/dtype.hpp"
#include "autograd/engine.hpp"
#include "autograd/functions.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/node.hpp"
#include "autograd/parallel.hpp"
#include "autograd/random.hpp"
#include "autograd/registry.hpp"
#include "autograd/tensor.hpp"
