#pragma once
/// \file datasets.hpp
/// Umbrella header of tapegrad's data loading: IDX files, MNIST-format directories, Dataset,
/// TensorDataset, ImageDataset, Subset, random_split and DataLoader.
#include "datasets/dataset.hpp"
#include "datasets/idx.hpp"
#include "datasets/images.hpp"
#include "datasets/mnist.hpp"
