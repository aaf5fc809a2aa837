// Federated averaging (train/federated.hpp): the splits, FedAvg / FedSGD against the plain training
// they reduce to, the weighting by sample counts, secure aggregation's exactness and masking, and
// DP-FedAvg's clipping and noise. Small float64 models on synthetic data: each case takes well
// under a second.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "autograd/functions.hpp"
#include "autograd/random.hpp"
#include "datasets/dataset.hpp"
#include "nn/nn.hpp"
#include "optim/sgd.hpp"
#include "train/federated.hpp"

using namespace tapegrad;
using train::ClientIndices;

namespace {

// x [n, 6] ~ N(0, 1), y = a class in 0..2 that depends on x (so there is something to learn).
std::shared_ptr<datasets::TensorDataset> toy_data(int64_t n, uint64_t seed) {
  Generator gen(seed);
  Tensor x = randn({n, 6}, DType::f64, gen);
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double s = x.at({i, 0}) + 0.5 * x.at({i, 1}) - x.at({i, 2});
    y[static_cast<size_t>(i)] = s < -0.5 ? 0 : (s < 0.5 ? 1 : 2);
  }
  return std::make_shared<datasets::TensorDataset>(x, index_tensor(y));
}

std::shared_ptr<nn::Sequential> toy_model(uint64_t seed) {
  Generator gen(seed);
  auto m = std::make_shared<nn::Sequential>(nn::Linear(6, 5, gen), nn::ReLU(), nn::Linear(5, 3, gen));
  m->to(DType::f64);
  return m;
}

Tensor ce(const Tensor& out, const Tensor& y) { return nn::F::cross_entropy(out, y); }

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

// What a client does in FedAvg, written out: E epochs of plain SGD over its samples, shuffled by
// the loader whose seed client_seed gives.
void local_sgd(nn::UnaryModule& model, const std::shared_ptr<const datasets::Dataset>& data,
               const std::vector<int64_t>& indices, int64_t epochs, int64_t batch, double lr, uint64_t seed) {
  datasets::DataLoader loader(std::make_shared<datasets::Subset>(data, indices),
                              {.batch_size = batch, .shuffle = true, .seed = seed});
  optim::SGD sgd(model.parameters(), optim::SGDOptions(lr));
  for (int64_t e = 0; e < epochs; ++e)
    for (const datasets::Batch& b : loader) {
      sgd.zero_grad();
      ce(model(b.x), b.y).backward();
      sgd.step();
    }
}

// A dataset that records every index list it is asked for: what a client's local training read.
class RecordingDataset final : public datasets::Dataset {
 public:
  explicit RecordingDataset(std::shared_ptr<const datasets::Dataset> inner) : inner_(std::move(inner)) {}
  int64_t size() const override { return inner_->size(); }
  datasets::Batch get(const std::vector<int64_t>& indices) const override {
    calls.push_back(indices);
    return inner_->get(indices);
  }
  mutable std::vector<std::vector<int64_t>> calls;  ///< every get(), in order

 private:
  std::shared_ptr<const datasets::Dataset> inner_;
};

// Pearson correlation of two equally long sequences.
double correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

}  // namespace

TEST_CASE("split_iid: disjoint, covering, sizes within one, deterministic") {
  const ClientIndices c = train::split_iid(1003, 10, 7);
  REQUIRE(c.size() == 10);
  std::vector<int64_t> all;
  for (const auto& k : c) {
    CHECK((k.size() == 100 || k.size() == 101));
    all.insert(all.end(), k.begin(), k.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(1003);
  std::iota(expected.begin(), expected.end(), int64_t{0});
  CHECK(all == expected);
  CHECK(train::split_iid(1003, 10, 7) == c);
  CHECK(train::split_iid(1003, 10, 8) != c);
  CHECK_THROWS_WITH_AS(train::split_iid(5, 6, 0), doctest::Contains("num_clients=6"), std::invalid_argument);
}

TEST_CASE("split_label_shards: the paper's 100 clients x 2 shards of 300 on 60,000 labels") {
  // Fashion-MNIST's label counts (6,000 per class), in a scrambled order
  std::vector<int64_t> y(60000);
  for (int64_t i = 0; i < 60000; ++i) y[static_cast<size_t>(i)] = (i * 7919) % 10;
  const Tensor labels = index_tensor(y);
  const ClientIndices c = train::split_label_shards(labels, 100, 2, 3);
  REQUIRE(c.size() == 100);
  std::set<int64_t> seen;
  int64_t repeated = 0;
  for (const auto& k : c) {
    CHECK(k.size() == 600);
    for (int64_t i : k) repeated += seen.insert(i).second ? 0 : 1;
  }
  CHECK(repeated == 0);
  CHECK(seen.size() == 60000);  // disjoint and covering
  const std::vector<int64_t> distinct = train::distinct_labels_per_client(labels, c);
  CHECK(*std::max_element(distinct.begin(), distinct.end()) <= 2);
  // most clients get two different labels: the split is non-IID, not one label per client
  CHECK(std::count(distinct.begin(), distinct.end(), 2) > 50);
  // IID clients see (nearly) every label: the counter-example the ≤ 2 check must tell apart
  const std::vector<int64_t> iid = train::distinct_labels_per_client(labels, train::split_iid(60000, 100, 3));
  CHECK(*std::min_element(iid.begin(), iid.end()) >= 9);
  CHECK(train::split_label_shards(labels, 100, 2, 3) == c);
}

TEST_CASE("split_label_shards: a client's two shards share a label only as often as chance") {
  // 10 labels x 6,000 = 20 shards of 300 per label; a client's second shard is one of the 199 others,
  // 19 of which have its first shard's label: P(one-label client) = 19/199, 9.55 of 100 clients.
  // Over 40 seeds, 4,000 clients: 382 expected, sd about sqrt(4000 * 0.0955 * 0.9045) = 18.6.
  // Handing out shards in label order (no permutation) would give 4,000; pairing shard s with s + 100
  // of the sorted order (a "both halves" bug) would give 0.
  std::vector<int64_t> y(60000);
  for (int64_t i = 0; i < 60000; ++i) y[static_cast<size_t>(i)] = (i * 7919) % 10;
  const Tensor labels = index_tensor(y);
  int64_t one_label = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const std::vector<int64_t> d = train::distinct_labels_per_client(labels, train::split_label_shards(labels, 100, 2, seed));
    one_label += std::count(d.begin(), d.end(), 1);
  }
  CHECK(std::fabs(static_cast<double>(one_label) - 4000.0 * 19.0 / 199.0) < 5 * 18.6);
}

TEST_CASE("split_label_shards: a remainder is left out, bad input is an error") {
  std::vector<int64_t> y(23);
  for (int64_t i = 0; i < 23; ++i) y[static_cast<size_t>(i)] = i % 3;
  const ClientIndices c = train::split_label_shards(index_tensor(y), 5, 2, 0);  // 10 shards of 2
  size_t total = 0;
  for (const auto& k : c) total += k.size();
  CHECK(total == 20);
  CHECK_THROWS_WITH_AS(train::split_label_shards(index_tensor(y), 20, 2, 0), doctest::Contains("40 shards"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(train::split_label_shards(randn({23}), 5, 2, 0), doctest::Contains("1-D int64"),
                       std::invalid_argument);
}

TEST_CASE("select_clients: m = max(round(C*K), 1) distinct clients, reproducible") {
  const auto a = train::select_clients(100, 0.1, 5, 3);
  CHECK(a.size() == 10);
  CHECK(std::set<int64_t>(a.begin(), a.end()).size() == 10);
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(train::select_clients(100, 0.1, 5, 3) == a);
  CHECK(train::select_clients(100, 0.1, 5, 4) != a);
  CHECK(train::select_clients(7, 0.01, 5, 1).size() == 1);
  CHECK(train::select_clients(7, 1.0, 5, 1) == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6});
}

TEST_CASE("FedAvg with one client, C = 1, E = 1 is plain SGD on that client's data") {
  auto data = toy_data(40, 1);
  const ClientIndices clients{{3, 5, 8, 13, 21, 34, 1, 2, 9, 10, 11}};
  for (int64_t rounds : {1, 3}) {
    CAPTURE(rounds);
    auto fed = toy_model(2), plain = toy_model(2);
    train::federated_fit(*fed, ce, data, clients,
                         {.rounds = rounds, .fraction = 1.0, .local_epochs = 1, .local_batch_size = 4, .client_lr = 0.1,
                          .seed = 9});
    for (int64_t r = 1; r <= rounds; ++r) local_sgd(*plain, data, clients[0], 1, 4, 0.1, train::client_seed(9, r, 0));
    const auto a = train::flat_parameters(*fed), b = train::flat_parameters(*plain);
    CHECK(max_abs_diff(a, b) <= 1e-12);
    CHECK(max_abs_diff(a, train::flat_parameters(*toy_model(2))) > 1e-3);  // it did train
  }
}

TEST_CASE("FedAvg: every local epoch reads the client's own samples once each, reshuffled, the last batch partial") {
  auto data = std::make_shared<RecordingDataset>(toy_data(40, 2));
  const ClientIndices clients{{3, 5, 8, 13, 21, 34, 1, 2, 9, 10, 11}, {0, 4, 6, 7, 12, 14, 15}};
  auto m = toy_model(3);
  train::federated_fit(*m, ce, data, clients,
                       {.rounds = 2, .fraction = 1.0, .local_epochs = 3, .local_batch_size = 4, .client_lr = 0.1, .seed = 5});
  // per round: client 0 (11 samples: batches 4, 4, 3) then client 1 (7: 4, 3), 3 epochs each
  REQUIRE(data->calls.size() == 2 * (3 * 3 + 3 * 2));
  size_t at = 0;
  for (int round = 0; round < 2; ++round) {
    for (const auto& own : clients) {
      const std::vector<int64_t> sorted_own = [&] { auto v = own; std::sort(v.begin(), v.end()); return v; }();
      std::vector<std::vector<int64_t>> epochs;
      for (int e = 0; e < 3; ++e) {
        std::vector<int64_t> order;
        for (size_t n = own.size(); n > 0;) {
          const auto& batch = data->calls[at++];
          CHECK(batch.size() == std::min<size_t>(n, 4));  // full batches, then the remainder
          n -= batch.size();
          order.insert(order.end(), batch.begin(), batch.end());
        }
        std::vector<int64_t> s = order;
        std::sort(s.begin(), s.end());
        CHECK(s == sorted_own);  // its own samples, each once
        epochs.push_back(order);
      }
      CHECK(epochs[0] != epochs[1]);  // reshuffled every epoch
      CHECK(epochs[1] != epochs[2]);
    }
  }
}

TEST_CASE("FedAvg weights the clients' models by their sample counts") {
  auto data = toy_data(60, 4);
  ClientIndices clients{{}, {}};
  for (int64_t i = 0; i < 12; ++i) clients[0].push_back(i);   // n_0 = 12
  for (int64_t i = 12; i < 48; ++i) clients[1].push_back(i);  // n_1 = 36
  auto fed = toy_model(5);
  const std::vector<double> w = train::flat_parameters(*fed);
  train::federated_fit(*fed, ce, data, clients,
                       {.rounds = 1, .fraction = 1.0, .local_epochs = 2, .local_batch_size = 5, .client_lr = 0.2, .seed = 3});
  std::vector<std::vector<double>> w_k;
  for (int64_t k = 0; k < 2; ++k) {
    auto m = toy_model(5);
    local_sgd(*m, data, clients[k], 2, 5, 0.2, train::client_seed(3, 1, k));
    w_k.push_back(train::flat_parameters(*m));
  }
  std::vector<double> weighted(w.size()), uniform(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    weighted[i] = 0.25 * w_k[0][i] + 0.75 * w_k[1][i];
    uniform[i] = 0.5 * w_k[0][i] + 0.5 * w_k[1][i];
  }
  const auto got = train::flat_parameters(*fed);
  CHECK(max_abs_diff(got, weighted) <= 1e-12);
  CHECK(max_abs_diff(got, uniform) > 1e-4);  // the weighting matters here
}

TEST_CASE("FedSGD with every client and B = inf is full-batch gradient descent") {
  auto data = toy_data(50, 6);
  ClientIndices clients(4);
  for (int64_t i = 0; i < 50; ++i) clients[static_cast<size_t>(i < 5 ? 0 : i < 20 ? 1 : i < 32 ? 2 : 3)].push_back(i);
  auto fed = toy_model(7), gd = toy_model(7);
  train::federated_fit(*fed, ce, data, clients,
                       {.algorithm = train::Algorithm::fedsgd, .rounds = 4, .fraction = 1.0, .local_batch_size = 0,
                        .server_lr = 0.3, .seed = 1});
  optim::SGD sgd(gd->parameters(), optim::SGDOptions(0.3));
  for (int step = 0; step < 4; ++step) {
    sgd.zero_grad();
    ce((*gd)(data->x()), data->y()).backward();
    sgd.step();
  }
  CHECK(max_abs_diff(train::flat_parameters(*fed), train::flat_parameters(*gd)) <= 1e-12);
}

TEST_CASE("federated_fit: same seed, same weights, and the callback sees each round and can stop") {
  auto data = toy_data(80, 8);
  const ClientIndices clients = train::split_iid(80, 8, 1);
  auto run = [&](uint64_t seed, int64_t stop_at) {
    auto m = toy_model(1);
    int64_t calls = 0;
    auto h = train::federated_fit(*m, ce, data, clients, {.rounds = 5, .fraction = 0.5, .local_epochs = 1, .seed = seed},
                                  [&](train::RoundLog& log) {
                                    ++calls;
                                    CHECK(log.round == calls);
                                    CHECK(log.clients.size() == 4);
                                    CHECK(std::isfinite(log.train_loss));
                                    log.metrics["x"] = static_cast<double>(log.round);
                                    return log.round < stop_at;
                                  });
    CHECK(static_cast<int64_t>(h.rounds.size()) == std::min<int64_t>(stop_at, 5));
    CHECK(h.first_round_reaching("x", 2.0) == (stop_at >= 2 ? 2 : -1));
    return train::flat_parameters(*m);
  };
  CHECK(run(4, 99) == run(4, 99));
  CHECK(run(4, 99) != run(5, 99));
  run(4, 2);
}

TEST_CASE("federated_fit: bad options and clients are errors that name them") {
  auto data = toy_data(20, 1);
  auto m = toy_model(1);
  const ClientIndices ok{{0, 1, 2}, {3, 4}};
  const std::vector<double> before = train::flat_parameters(*m);
  CHECK_THROWS_WITH_AS(train::federated_fit(*m, ce, data, ok, {.fraction = 0.0}), doctest::Contains("fraction C"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(train::federated_fit(*m, ce, data, ok, {.local_epochs = 0}), doctest::Contains("local_epochs"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(train::federated_fit(*m, ce, data, {{0, 1}, {}}, {}), doctest::Contains("client 1 has no samples"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(train::federated_fit(*m, ce, data, {{0, 20}}, {}), doctest::Contains("index 20"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(train::federated_fit(*m, ce, data, ok, {.privacy = {.noise_multiplier = 1.0}}),
                       doctest::Contains("clip_norm"), std::invalid_argument);
  CHECK(train::flat_parameters(*m) == before);  // nothing changed
  CHECK_THROWS_AS(train::set_flat_parameters(*m, {1.0, 2.0}), std::invalid_argument);
}

TEST_CASE("secure aggregation: the masked sum decodes to the plain sum within the fixed-point resolution") {
  const train::SecureAggregation sa(11, 20);
  const std::vector<int64_t> participants{2, 5, 9, 14, 30};
  Generator gen(3);
  std::vector<std::vector<double>> values;
  std::vector<double> plain(1001, 0.0);
  std::vector<uint32_t> sum(1001, 0u);
  for (int64_t k : participants) {
    std::vector<double> v(1001);
    for (double& x : v) x = gen.normal() * 3.0;
    for (size_t i = 0; i < v.size(); ++i) plain[i] += v[i];
    std::vector<uint32_t> w = sa.encode(v, 5, k);
    sa.mask(w, 7, k, participants);
    // one masked update alone decodes to noise, nowhere near the client's values
    CHECK(max_abs_diff(sa.decode(w), v) > 100.0);
    train::add_words(sum, w);
  }
  const std::vector<double> decoded = sa.decode(sum);
  CHECK(max_abs_diff(decoded, plain) <= 5 * sa.resolution() / 2);  // m roundings of at most half a unit
  CHECK(sa.resolution() == std::ldexp(1.0, -20));
  // a participant missing from the sum leaves its partners' masks in: the result is garbage
  std::vector<uint32_t> partial(1001, 0u);
  for (size_t i = 0; i + 1 < participants.size(); ++i) {
    std::vector<uint32_t> w = sa.encode(std::vector<double>(1001, 0.0), 5, participants[i]);
    sa.mask(w, 7, participants[i], participants);
    train::add_words(partial, w);
  }
  CHECK(max_abs_diff(sa.decode(partial), std::vector<double>(1001, 0.0)) > 100.0);
}

TEST_CASE("secure aggregation: a masked update is uncorrelated with the update") {
  const train::SecureAggregation sa(5, 20);
  const int64_t n = 200000;
  std::vector<double> update(static_cast<size_t>(n));
  Generator gen(1);
  for (int64_t i = 0; i < n; ++i) update[static_cast<size_t>(i)] = 0.5 * std::sin(0.001 * double(i)) + 0.01 * gen.normal();
  std::vector<uint32_t> w = sa.encode(update, 3, 1);
  std::vector<double> unmasked(w.begin(), w.end());  // the words the server would see without masks
  sa.mask(w, 1, 1, {0, 1, 2});
  std::vector<double> masked(w.begin(), w.end());
  // Both as unsigned words and as decoded values. For independent sequences r ~ N(0, 1/n): |r| < 5/√n
  // fails with probability < 1e-6.
  const double limit = 5.0 / std::sqrt(static_cast<double>(n));
  CHECK(std::fabs(correlation(unmasked, masked)) < limit);
  CHECK(std::fabs(correlation(update, sa.decode(w))) < limit);
  // the same statistic on the unmasked words is ≈ 1: the check can fail
  CHECK(correlation(update, sa.decode(sa.encode(update, 3, 1))) > 0.99);
  // and the masked words are uniform: each of 16 high-nibble bins holds n/16 ± 5σ
  std::vector<int64_t> bins(16, 0);
  for (uint32_t x : w) ++bins[x >> 28];
  const double expect = n / 16.0, sigma = std::sqrt(expect * (15.0 / 16.0));
  for (int64_t b : bins) CHECK(std::fabs(double(b) - expect) < 5 * sigma);
}

TEST_CASE("secure aggregation: out-of-range values and a bad participant list are errors") {
  const train::SecureAggregation sa(0, 20);
  CHECK(sa.bound(8) == std::ldexp(1.0, 11) / 8);  // 2^(31-20) / m
  CHECK_NOTHROW(sa.encode({255.9, -255.9}, 8, 0));
  CHECK_THROWS_WITH_AS(sa.encode({0.0, 256.0}, 8, 3), doctest::Contains("client 3's element 1"), std::overflow_error);
  CHECK_THROWS_AS(sa.encode({NAN}, 8, 3), std::overflow_error);
  std::vector<uint32_t> w(4, 0u);
  CHECK_THROWS_WITH_AS(sa.mask(w, 1, 4, {1, 2, 3}), doctest::Contains("client 4"), std::invalid_argument);
  CHECK_THROWS_AS(train::SecureAggregation(0, 31), std::invalid_argument);
  CHECK(sa.pair_seed(3, 1, 2) == sa.pair_seed(3, 2, 1));
  CHECK(sa.pair_seed(3, 1, 2) != sa.pair_seed(4, 1, 2));
}

TEST_CASE("FedAvg with secure aggregation equals plain FedAvg to the fixed-point resolution") {
  auto data = toy_data(90, 2);
  const ClientIndices clients = train::split_iid(90, 6, 0);
  train::FederatedOptions o{.rounds = 1, .fraction = 0.5, .local_epochs = 2, .local_batch_size = 5, .client_lr = 0.1,
                            .seed = 4};
  auto plain = toy_model(3), secure = toy_model(3);
  train::federated_fit(*plain, ce, data, clients, o);
  o.secure_aggregation = {.enabled = true, .fraction_bits = 20};
  train::federated_fit(*secure, ce, data, clients, o);
  const double d = max_abs_diff(train::flat_parameters(*plain), train::flat_parameters(*secure));
  CHECK(d <= 3 * std::ldexp(1.0, -21));  // 3 clients, each rounded to half a unit at most
  CHECK(d > 0);                           // fixed point did round: the masked path really ran
}

TEST_CASE("DP-FedAvg: updates clipped to S, noise of std sigma*S/m on the average") {
  SUBCASE("clip_update") {
    std::vector<double> u{3.0, 4.0};
    CHECK(train::clip_update(u, 1.0) == doctest::Approx(5.0));
    CHECK(u[0] == doctest::Approx(0.6));
    CHECK(u[1] == doctest::Approx(0.8));
    std::vector<double> short_one{0.3, 0.4};
    train::clip_update(short_one, 1.0);
    CHECK(short_one == std::vector<double>{0.3, 0.4});
  }
  auto data = toy_data(40, 3);
  SUBCASE("one client's step is at most S long") {
    auto m = toy_model(1);
    const auto w = train::flat_parameters(*m);
    auto h = train::federated_fit(*m, ce, data, {{0, 1, 2, 3, 4, 5, 6, 7}},
                                  {.rounds = 1, .fraction = 1.0, .local_epochs = 3, .local_batch_size = 2, .client_lr = 0.5,
                                   .privacy = {.clip_norm = 0.05}});
    CHECK(h.rounds[0].update_norm == doctest::Approx(0.05));  // the raw update is longer: it was clipped
    std::vector<double> d = train::flat_parameters(*m);
    for (size_t i = 0; i < d.size(); ++i) d[i] -= w[i];
    CHECK(train::clip_update(d, 1e9) <= 0.05 * (1 + 1e-12));
  }
  SUBCASE("noise") {
    // client lr 0: every update is zero, so the global step is the noise alone
    Generator gen(0);
    auto m = std::make_shared<nn::Linear>(100, 100, gen);
    m->to(DType::f64);
    auto data2 = std::make_shared<datasets::TensorDataset>(randn({8, 100}, DType::f64), index_tensor({0, 1, 2, 3, 4, 5, 6, 7}));
    const auto w = train::flat_parameters(*m);
    const double S = 2.0, sigma = 1.5;
    const ClientIndices clients{{0, 1}, {2, 3}, {4, 5}, {6, 7}};
    train::federated_fit(*m, ce, data2, clients,
                         {.rounds = 1, .fraction = 1.0, .local_epochs = 1, .client_lr = 0.0,
                          .privacy = {.clip_norm = S, .noise_multiplier = sigma}});
    const auto after = train::flat_parameters(*m);
    std::vector<double> noise(w.size());
    for (size_t i = 0; i < w.size(); ++i) noise[i] = after[i] - w[i];
    const double n = static_cast<double>(noise.size());
    const double mean = std::accumulate(noise.begin(), noise.end(), 0.0) / n;
    double var = 0;
    for (double x : noise) var += (x - mean) * (x - mean);
    const double sd = std::sqrt(var / (n - 1)), expected = sigma * S / 4.0;  // m = 4
    CHECK(std::fabs(mean) < 5 * expected / std::sqrt(n));
    CHECK(sd == doctest::Approx(expected).epsilon(0.03));  // 10,100 draws: the std's own spread is 0.7 %
  }
}
