#include "datasets/dataset.hpp"

#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "autograd/functions.hpp"
#include "autograd/debug.hpp"
#include "autograd/node.hpp"
#include "datasets/sampler.hpp"

namespace tapegrad::datasets {

Batch Dataset::range(int64_t begin, int64_t end) const {
  std::vector<int64_t> idx(static_cast<size_t>(end - begin));
  std::iota(idx.begin(), idx.end(), begin);
  return get(idx);
}

TensorDataset::TensorDataset(Tensor x, Tensor y) : x_(std::move(x)), y_(std::move(y)) {
  if (!x_.defined() || !y_.defined() || x_.dim() == 0 || y_.dim() == 0)
    throw std::invalid_argument("TensorDataset: x and y must be defined tensors of rank >= 1");
  if (x_.size(0) != y_.size(0)) {
    throw std::invalid_argument("TensorDataset: x has " + std::to_string(x_.size(0)) + " samples, y has " +
                                std::to_string(y_.size(0)));
  }
}

Batch TensorDataset::get(const std::vector<int64_t>& indices) const {
  for (int64_t i : indices) {
    if (i < 0 || i >= size())
      throw std::out_of_range("TensorDataset::get: index " + std::to_string(i) + " out of range [0, " +
                              std::to_string(size()) + ")");
  }
  NoGradGuard no_grad;
  Tensor idx = index_tensor(indices);
  return {index_select(x_, 0, idx), index_select(y_, 0, idx)};
}

Batch TensorDataset::range(int64_t begin, int64_t end) const {
  if (begin < 0 || end > size() || begin > end)
    throw std::out_of_range("TensorDataset::range: [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") outside [0, " + std::to_string(size()) + ")");
  NoGradGuard no_grad;
  return {slice(x_, 0, begin, end), slice(y_, 0, begin, end)};
}

Subset::Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  if (!base_) throw std::invalid_argument("Subset: null dataset");
  for (int64_t i : indices_) {
    if (i < 0 || i >= base_->size()) throw std::out_of_range("Subset: index " + std::to_string(i) + " out of range");
  }
}

Batch Subset::get(const std::vector<int64_t>& indices) const {
  std::vector<int64_t> mapped;
  mapped.reserve(indices.size());
  for (int64_t i : indices) {
    if (i < 0 || i >= size()) throw std::out_of_range("Subset::get: index " + std::to_string(i) + " out of range");
    mapped.push_back(indices_[static_cast<size_t>(i)]);
  }
  return base_->get(mapped);
}

std::vector<int64_t> randperm(int64_t n, Generator& gen) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[static_cast<size_t>(i)], p[gen.below(static_cast<uint64_t>(i + 1))]);
  return p;
}

std::pair<std::shared_ptr<Subset>, std::shared_ptr<Subset>> random_split(std::shared_ptr<const Dataset> data,
                                                                         double fraction, uint64_t seed) {
  if (!data) throw std::invalid_argument("random_split: null dataset");
  if (!(fraction >= 0.0 && fraction < 1.0))
    throw std::invalid_argument("random_split: fraction must be in [0, 1), got " + std::to_string(fraction));
  Generator gen(seed);
  std::vector<int64_t> perm = randperm(data->size(), gen);
  auto n_second = static_cast<int64_t>(std::llround(fraction * static_cast<double>(data->size())));
  auto cut = perm.end() - n_second;
  return {std::make_shared<Subset>(data, std::vector<int64_t>(perm.begin(), cut)),
          std::make_shared<Subset>(data, std::vector<int64_t>(cut, perm.end()))};
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> data, DataLoaderOptions options)
    : data_(std::move(data)), options_(options), gen_(options.seed) {
  if (!data_) throw std::invalid_argument("DataLoader: null dataset");
  if (options_.batch_size <= 0)
    throw std::invalid_argument("DataLoader: batch_size must be positive, got " + std::to_string(options_.batch_size));
  if (options_.sampler && options_.shuffle)
    throw std::invalid_argument("DataLoader: shuffle and sampler exclude each other (the sampler shuffles)");
  if (options_.sampler && options_.sampler->size() != data_->size())
    throw std::invalid_argument("DataLoader: the sampler is for " + std::to_string(options_.sampler->size()) +
                                " samples, the dataset has " + std::to_string(data_->size()));
}

int64_t DataLoader::pass_size() const { return options_.sampler ? options_.sampler->num_samples() : data_->size(); }

int64_t DataLoader::num_batches() const {
  const int64_t n = pass_size(), b = options_.batch_size;
  return options_.drop_last ? n / b : n == 0 ? 0 : (n - 1) / b + 1;  // no overflow for any batch size
}

int64_t DataLoader::num_samples() const {
  return options_.drop_last ? num_batches() * options_.batch_size : pass_size();
}

void DataLoader::reset() {
  if (options_.sampler) order_ = options_.sampler->indices();
  else if (options_.shuffle) order_ = randperm(data_->size(), gen_);
}

Batch DataLoader::batch(int64_t b) const {
  if (b < 0 || b >= num_batches())
    throw std::out_of_range("DataLoader::batch: " + std::to_string(b) + " of " + std::to_string(num_batches()));
  NotAnOpScope not_an_op;  // for the Profiler: building a batch is not the next op's forward
  const int64_t begin = b * options_.batch_size;
  const int64_t end = begin + std::min(options_.batch_size, pass_size() - begin);
  if (!options_.shuffle && !options_.sampler) return data_->range(begin, end);
  if (order_.empty() && pass_size() > 0)
    throw std::logic_error("DataLoader::batch: call reset() (or begin()) before reading a shuffled loader");
  return data_->get(std::vector<int64_t>(order_.begin() + begin, order_.begin() + end));
}

}  // namespace tapegrad::datasets
