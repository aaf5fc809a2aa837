#pragma once
/// \file nn.hpp
/// Umbrella header of tapegrad::nn: modules and containers, layers, the functional API and
/// losses, initializers, safetensors saving/loading, transformer layers with a GPT, and attributions
/// (saliency, SmoothGrad, Integrated Gradients).
#include "nn/checkpoint_sequential.hpp"
#include "nn/conv.hpp"
#include "nn/explain.hpp"
#include "nn/functional.hpp"
#include "nn/init.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"
#include "nn/norm.hpp"
#include "nn/serialize.hpp"
#include "nn/transformer.hpp"
