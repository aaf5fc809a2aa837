#include "train/federated.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "autograd/node.hpp"
#include "autograd/random.hpp"
#include "distributed/comm.hpp"
#include "optim/sgd.hpp"

namespace tapegrad::train {

namespace {

// splitmix64's output function: a bijective 64-bit mixer.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Domain tags keep the streams derived from one seed apart.
enum Stream : uint64_t { kSelect = 0x5e1ec7, kShuffle = 0x5f1e, kPair = 0xa1a5, kNoise = 0xd1ff };

uint64_t derive(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b = 0, uint64_t c = 0) {
  uint64_t h = mix(seed ^ mix(stream));
  h = mix(h ^ a);
  h = mix(h ^ b);
  return mix(h ^ c);
}

[[noreturn]] void invalid(const std::string& what) { throw std::invalid_argument("federated_fit: " + what); }

void check_options(const FederatedOptions& o, const ClientIndices& clients, int64_t data_size) {
  if (clients.empty()) invalid("no clients");
  if (!(o.fraction > 0 && o.fraction <= 1)) invalid("fraction C must be in (0, 1], got " + std::to_string(o.fraction));
  if (o.rounds <= 0) invalid("rounds must be > 0, got " + std::to_string(o.rounds));
  if (o.local_epochs <= 0) invalid("local_epochs E must be > 0, got " + std::to_string(o.local_epochs));
  if (o.local_batch_size < 0) invalid("local_batch_size B must be >= 0 (0: B = inf), got " + std::to_string(o.local_batch_size));
  if (!(o.client_lr >= 0)) invalid("client_lr must be >= 0, got " + std::to_string(o.client_lr));
  if (!(o.server_lr > 0)) invalid("server_lr must be > 0, got " + std::to_string(o.server_lr));
  const auto& p = o.privacy;
  if (!(p.clip_norm >= 0)) invalid("privacy.clip_norm S must be >= 0, got " + std::to_string(p.clip_norm));
  if (!(p.noise_multiplier >= 0)) invalid("privacy.noise_multiplier must be >= 0, got " + std::to_string(p.noise_multiplier));
  if (p.noise_multiplier > 0 && p.clip_norm == 0) invalid("privacy.noise_multiplier > 0 needs a clip_norm S > 0");
  for (size_t k = 0; k < clients.size(); ++k) {
    if (clients[k].empty()) invalid("client " + std::to_string(k) + " has no samples");
    for (int64_t i : clients[k])
      if (i < 0 || i >= data_size)
        invalid("client " + std::to_string(k) + " holds index " + std::to_string(i) + ", outside the dataset's " +
                std::to_string(data_size) + " samples");
  }
}

// Client k's update from the global weights (already in the model): Δ_k and its mean training loss.
struct ClientResult {
  std::vector<double> update;
  double loss = 0;
};

ClientResult run_client(nn::UnaryModule& model, const FederatedLossFn& loss, const std::shared_ptr<const datasets::Dataset>& data,
                        const std::vector<int64_t>& indices, const std::vector<double>& global, const FederatedOptions& o,
                        int64_t round, int64_t client) {
  set_flat_parameters(model, global);
  model.train();
  ClientResult r;
  if (o.algorithm == Algorithm::fedsgd) {
    for (Tensor& p : model.parameters()) p.zero_grad();
    datasets::Batch b = data->get(indices);
    Tensor l = loss(model(b.x), b.y);
    l.backward();
    r.loss = l.item();
    r.update.reserve(global.size());
    for (Tensor& p : model.parameters()) {
      Tensor g = p.grad();
      if (!g.defined()) {
        r.update.resize(r.update.size() + static_cast<size_t>(p.numel()), 0.0);
        continue;
      }
      for (double v : g.to_vector()) r.update.push_back(-v);
      p.zero_grad();
    }
    return r;
  }
  auto local = std::make_shared<datasets::Subset>(data, indices);
  const int64_t batch = o.local_batch_size > 0 ? o.local_batch_size : local->size();
  datasets::DataLoader loader(local, {.batch_size = batch, .shuffle = true, .seed = client_seed(o.seed, round, client)});
  optim::SGD sgd(model.parameters(), optim::SGDOptions(o.client_lr));
  int64_t steps = 0;
  for (int64_t e = 0; e < o.local_epochs; ++e) {
    for (const datasets::Batch& b : loader) {
      sgd.zero_grad();
      Tensor l = loss(model(b.x), b.y);
      l.backward();
      sgd.step();
      r.loss += l.item();
      ++steps;
    }
  }
  r.loss /= static_cast<double>(steps);
  r.update = flat_parameters(model);
  for (size_t i = 0; i < r.update.size(); ++i) r.update[i] -= global[i];
  return r;
}

// The sums over the ranks (distributed::all_reduce: the identity in a world of one process).
void reduce_sum(std::vector<double>& values) {
  if (distributed::world_size() == 1) return;
  Tensor t = Tensor::empty({static_cast<int64_t>(values.size())}, DType::f64);
  std::copy(values.begin(), values.end(), t.mutable_data<double>());
  distributed::all_reduce(t, distributed::ReduceOp::sum);
  std::copy(t.data<double>(), t.data<double>() + values.size(), values.begin());
}
// The ranks' masked words summed modulo 2^32: as int64 (exact for any practical world size), then
// truncated.
void reduce_words(std::vector<uint32_t>& words) {
  if (distributed::world_size() == 1) return;
  Tensor t = Tensor::empty({static_cast<int64_t>(words.size())}, DType::i64);
  std::copy(words.begin(), words.end(), t.mutable_data<int64_t>());
  distributed::all_reduce(t, distributed::ReduceOp::sum);
  const int64_t* sum = t.data<int64_t>();
  for (size_t i = 0; i < words.size(); ++i) words[i] = static_cast<uint32_t>(static_cast<uint64_t>(sum[i]));
}

}  // namespace

ClientIndices split_iid(int64_t n, int64_t num_clients, uint64_t seed) {
  if (num_clients <= 0 || num_clients > n)
    throw std::invalid_argument("split_iid: need 0 < num_clients <= n, got num_clients=" + std::to_string(num_clients) +
                                " n=" + std::to_string(n));
  Generator gen(derive(seed, kShuffle, 0xa11));
  std::vector<int64_t> order = datasets::randperm(n, gen);
  ClientIndices clients(static_cast<size_t>(num_clients));
  for (int64_t k = 0, begin = 0; k < num_clients; ++k) {
    const int64_t end = begin + n / num_clients + (k < n % num_clients ? 1 : 0);
    clients[k].assign(order.begin() + begin, order.begin() + end);
    begin = end;
  }
  return clients;
}

namespace {
std::vector<int64_t> label_vector(const Tensor& labels, const char* fn) {
  if (labels.dim() != 1 || labels.dtype() != DType::i64)
    throw std::invalid_argument(std::string(fn) + ": labels must be a 1-D int64 tensor, got " + std::to_string(labels.dim()) +
                                "-D " + dtype_name(labels.dtype()));
  std::vector<int64_t> out(static_cast<size_t>(labels.numel()));
  const int64_t* p = labels.data<int64_t>();
  std::copy(p, p + labels.numel(), out.begin());
  return out;
}
}  // namespace

ClientIndices split_label_shards(const Tensor& labels, int64_t num_clients, int64_t shards_per_client, uint64_t seed) {
  const std::vector<int64_t> y = label_vector(labels, "split_label_shards");
  const int64_t n = static_cast<int64_t>(y.size());
  if (num_clients <= 0 || shards_per_client <= 0)
    throw std::invalid_argument("split_label_shards: num_clients and shards_per_client must be > 0, got " +
                                std::to_string(num_clients) + " and " + std::to_string(shards_per_client));
  const int64_t shards = num_clients * shards_per_client;
  if (shards > n)
    throw std::invalid_argument("split_label_shards: " + std::to_string(shards) + " shards for only " + std::to_string(n) +
                                " samples");
  const int64_t shard_size = n / shards;
  std::vector<int64_t> sorted(static_cast<size_t>(n));
  std::iota(sorted.begin(), sorted.end(), int64_t{0});
  std::stable_sort(sorted.begin(), sorted.end(), [&](int64_t a, int64_t b) { return y[a] < y[b]; });
  Generator gen(derive(seed, kShuffle, 0x5ad));
  const std::vector<int64_t> shard_order = datasets::randperm(shards, gen);
  ClientIndices clients(static_cast<size_t>(num_clients));
  for (int64_t k = 0; k < num_clients; ++k) {
    for (int64_t s = 0; s < shards_per_client; ++s) {
      const int64_t shard = shard_order[k * shards_per_client + s];
      auto first = sorted.begin() + shard * shard_size;
      clients[k].insert(clients[k].end(), first, first + shard_size);
    }
  }
  return clients;
}

std::vector<int64_t> distinct_labels_per_client(const Tensor& labels, const ClientIndices& clients) {
  const std::vector<int64_t> y = label_vector(labels, "distinct_labels_per_client");
  std::vector<int64_t> out;
  for (const auto& c : clients) {
    std::vector<int64_t> seen;
    for (int64_t i : c) seen.push_back(y.at(static_cast<size_t>(i)));
    std::sort(seen.begin(), seen.end());
    out.push_back(std::unique(seen.begin(), seen.end()) - seen.begin());
  }
  return out;
}

int64_t FederatedHistory::first_round_reaching(const std::string& key, double threshold) const {
  for (const RoundLog& r : rounds) {
    auto it = r.metrics.find(key);
    if (it != r.metrics.end() && it->second >= threshold) return r.round;
  }
  return -1;
}

std::vector<int64_t> select_clients(int64_t num_clients, double fraction, uint64_t seed, int64_t round) {
  if (num_clients <= 0 || !(fraction > 0 && fraction <= 1))
    throw std::invalid_argument("select_clients: need num_clients > 0 and 0 < fraction <= 1, got " +
                                std::to_string(num_clients) + " and " + std::to_string(fraction));
  const int64_t m = std::max<int64_t>(std::llround(fraction * static_cast<double>(num_clients)), 1);
  Generator gen(derive(seed, kSelect, static_cast<uint64_t>(round)));
  std::vector<int64_t> order = datasets::randperm(num_clients, gen);
  order.resize(static_cast<size_t>(m));
  std::sort(order.begin(), order.end());
  return order;
}

uint64_t client_seed(uint64_t seed, int64_t round, int64_t client) {
  return derive(seed, kShuffle, static_cast<uint64_t>(round), static_cast<uint64_t>(client));
}

std::vector<double> flat_parameters(const nn::Module& model) {
  std::vector<double> out;
  for (const Tensor& p : model.parameters()) {
    std::vector<double> v = p.to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

void set_flat_parameters(nn::Module& model, const std::vector<double>& values) {
  const std::vector<Tensor> params = model.parameters();
  size_t total = 0;
  for (const Tensor& p : params) total += static_cast<size_t>(p.numel());
  if (total != values.size())
    throw std::invalid_argument("set_flat_parameters: the model has " + std::to_string(total) + " parameter values, got " +
                                std::to_string(values.size()));
  size_t at = 0;
  for (const Tensor& p : params) {
    const auto n = static_cast<size_t>(p.numel());
    if (p.dtype() == DType::f32) {
      float* w = p.mutable_data<float>();
      for (size_t i = 0; i < n; ++i) w[i] = static_cast<float>(values[at + i]);
    } else if (p.dtype() == DType::f64) {
      std::copy(values.begin() + static_cast<std::ptrdiff_t>(at), values.begin() + static_cast<std::ptrdiff_t>(at + n),
                p.mutable_data<double>());
    } else {
      throw std::invalid_argument(std::string("set_flat_parameters: parameters must be float32 or float64, got ") +
                                  dtype_name(p.dtype()));
    }
    p.bump_version();
    at += n;
  }
}

double clip_update(std::vector<double>& update, double clip_norm) {
  double sq = 0;
  for (double v : update) sq += v * v;
  const double norm = std::sqrt(sq);
  if (norm > clip_norm) {
    const double scale = clip_norm / norm;
    for (double& v : update) v *= scale;
  }
  return norm;
}

// ---- secure aggregation ----

SecureAggregation::SecureAggregation(uint64_t seed, int fraction_bits) : seed_(seed), fraction_bits_(fraction_bits) {
  if (fraction_bits < 1 || fraction_bits > 30)
    throw std::invalid_argument("SecureAggregation: fraction_bits must be in [1, 30], got " + std::to_string(fraction_bits));
}

double SecureAggregation::resolution() const { return std::ldexp(1.0, -fraction_bits_); }

double SecureAggregation::bound(int64_t participants) const {
  return std::ldexp(1.0, 31 - fraction_bits_) / static_cast<double>(std::max<int64_t>(participants, 1));
}

uint64_t SecureAggregation::pair_seed(int64_t round, int64_t i, int64_t j) const {
  return derive(seed_, kPair, static_cast<uint64_t>(round), static_cast<uint64_t>(std::min(i, j)),
                static_cast<uint64_t>(std::max(i, j)));
}

std::vector<uint32_t> SecureAggregation::encode(const std::vector<double>& values, int64_t participants,
                                                int64_t client) const {
  const double limit = bound(participants), scale = std::ldexp(1.0, fraction_bits_);
  std::vector<uint32_t> words(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (!(std::fabs(values[i]) < limit))
      throw std::overflow_error("SecureAggregation::encode: client " + std::to_string(client) + "'s element " +
                                std::to_string(i) + " = " + std::to_string(values[i]) + " is outside (-" +
                                std::to_string(limit) + ", " + std::to_string(limit) + ") = 2^(31-f)/m with f=" +
                                std::to_string(fraction_bits_) + ", m=" + std::to_string(participants) +
                                ": lower fraction_bits");
    const auto fixed = static_cast<int64_t>(std::llround(values[i] * scale));
    words[i] = static_cast<uint32_t>(fixed);  // two's complement modulo 2^32
  }
  return words;
}

void SecureAggregation::mask(std::vector<uint32_t>& words, int64_t round, int64_t client,
                             const std::vector<int64_t>& participants) const {
  if (std::count(participants.begin(), participants.end(), client) != 1)
    throw std::invalid_argument("SecureAggregation::mask: client " + std::to_string(client) +
                                " must be listed exactly once among the round's participants");
  for (int64_t j : participants) {
    if (j == client) continue;
    if (std::count(participants.begin(), participants.end(), j) != 1)
      throw std::invalid_argument("SecureAggregation::mask: participant " + std::to_string(j) + " is listed twice");
    const uint64_t s = pair_seed(round, client, j);
    const bool add = client < j;
    // r_ij: splitmix64's stream from s, two 32-bit words per output
    for (size_t i = 0; i < words.size(); i += 2) {
      const uint64_t r = mix(s + (i / 2 + 1) * 0x9E3779B97F4A7C15ull);
      const auto lo = static_cast<uint32_t>(r), hi = static_cast<uint32_t>(r >> 32);
      words[i] = add ? words[i] + lo : words[i] - lo;
      if (i + 1 < words.size()) words[i + 1] = add ? words[i + 1] + hi : words[i + 1] - hi;
    }
  }
}

std::vector<double> SecureAggregation::decode(const std::vector<uint32_t>& words) const {
  std::vector<double> out(words.size());
  const double unit = resolution();
  for (size_t i = 0; i < words.size(); ++i) out[i] = static_cast<double>(static_cast<int32_t>(words[i])) * unit;
  return out;
}

void add_words(std::vector<uint32_t>& sum, const std::vector<uint32_t>& add) {
  if (sum.size() != add.size())
    throw std::invalid_argument("add_words: lengths differ, " + std::to_string(sum.size()) + " and " +
                                std::to_string(add.size()));
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += add[i];  // unsigned: wraps modulo 2^32
}

// ---- the rounds ----

FederatedHistory federated_fit(nn::UnaryModule& model, const FederatedLossFn& loss,
                               std::shared_ptr<const datasets::Dataset> data, const ClientIndices& clients,
                               const FederatedOptions& o, const RoundCallback& on_round) {
  if (!data) invalid("no dataset");
  check_options(o, clients, data->size());
  const bool dp = o.privacy.clip_norm > 0;
  const auto& sa_options = o.secure_aggregation;
  const SecureAggregation secure(o.seed, sa_options.enabled ? sa_options.fraction_bits : 20);
  const int rank = distributed::rank(), size = distributed::world_size();
  FederatedHistory history;
  for (int64_t round = 1; round <= o.rounds; ++round) {
    RoundLog log;
    log.round = round;
    log.clients = select_clients(static_cast<int64_t>(clients.size()), o.fraction, o.seed, round);
    const auto m = static_cast<int64_t>(log.clients.size());
    double total = 0;
    for (int64_t k : log.clients) total += static_cast<double>(clients[k].size());
    const std::vector<double> global = flat_parameters(model);
    std::vector<double> sum(global.size(), 0.0), loss_sum(1, 0.0);
    std::vector<uint32_t> words(sa_options.enabled ? global.size() : 0, 0u);
    for (int64_t i = rank; i < m; i += size) {
      const int64_t k = log.clients[i];
      ClientResult r = run_client(model, loss, data, clients[k], global, o, round, k);
      // p_k = n_k / Σ n_j; DP-FedAvg averages the clipped updates with equal weights
      const double p = dp ? 1.0 / static_cast<double>(m) : static_cast<double>(clients[k].size()) / total;
      if (dp) clip_update(r.update, o.privacy.clip_norm);
      for (double& v : r.update) v *= p;
      loss_sum[0] += p * r.loss;
      if (sa_options.enabled) {
        std::vector<uint32_t> masked = secure.encode(r.update, m, k);
        secure.mask(masked, round, k, log.clients);
        add_words(words, masked);  // what the server receives: masked words only
      } else {
        for (size_t j = 0; j < sum.size(); ++j) sum[j] += r.update[j];
      }
    }
    if (sa_options.enabled) {
      reduce_words(words);
      sum = secure.decode(words);
    } else {
      reduce_sum(sum);
    }
    reduce_sum(loss_sum);
    if (dp && o.privacy.noise_multiplier > 0) {
      Generator gen(derive(o.seed, kNoise, static_cast<uint64_t>(round)));
      const double noise_std = o.privacy.noise_multiplier * o.privacy.clip_norm / static_cast<double>(m);
      for (double& v : sum) v += noise_std * gen.normal();
    }
    std::vector<double> next(global.size());
    double sq = 0;
    for (size_t j = 0; j < next.size(); ++j) {
      const double step = o.server_lr * sum[j];
      next[j] = global[j] + step;
      sq += step * step;
    }
    set_flat_parameters(model, next);
    log.train_loss = loss_sum[0];
    log.update_norm = std::sqrt(sq);
    const bool go_on = on_round ? on_round(log) : true;
    history.rounds.push_back(std::move(log));
    if (!go_on) break;
  }
  return history;
}

}  // namespace tapegrad::train
