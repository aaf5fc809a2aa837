#pragma once
/// \file datasets.hpp
/// Umbrella header of tapegrad's data loading: IDX files, MNIST-format directories, Dataset,
/// TensorDataset, ImageDataset, Subset, random_split and DataLoader, text (load_text,
/// CharTokenizer, TextDataset), NumPy's .npy / .npz files (npy.hpp), CSV tables (csv.hpp), and the
/// checked file I/O they share with nn's serialization (io::ReadFile, io::atomic_write).
#include "datasets/csv.hpp"
#include "datasets/dataset.hpp"
#include "autograd/file_io.hpp"
#include "datasets/idx.hpp"
#include "datasets/images.hpp"
#include "datasets/mnist.hpp"
#include "datasets/npy.hpp"
#include "datasets/sampler.hpp"
#include "datasets/text.hpp"
