#pragma once
/// \file federated.hpp
/// Federated averaging: FedAvg and its baseline FedSGD (McMahan et al., "Communication-Efficient
/// Learning of Deep Networks from Decentralized Data", 2017), with secure aggregation by pairwise
/// masks (Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine Learning",
/// 2017) and DP-FedAvg's clipping and Gaussian noise (McMahan et al., "Learning Differentially
/// Private Recurrent Language Models", 2018).
///
/// K clients each own a set of sample indices into one dataset (the data never moves: a client
/// trains on its indices, and only weight updates travel). A round:
///
///   1. the server picks m = max(round(C·K), 1) clients at random (select_clients);
///   2. each picked client k starts from the global weights w and returns its update Δ_k:
///      FedAvg: E epochs of plain SGD (client lr η, batches of B of its own samples, reshuffled every
///      epoch) give w_k, and Δ_k = w_k − w;  FedSGD: Δ_k = −∇L_k(w), the gradient of the mean loss
///      over all its samples (one step, B = ∞);
///   3. the server averages Δ = Σ_k p_k Δ_k with p_k = n_k / Σ_j n_j (n_k: client k's sample count,
///      which clients report in the clear) and sets w ← w + η_s·Δ (η_s: server lr; 1 for FedAvg,
///      the step size for FedSGD).
///
///     auto clients = train::split_label_shards(train_set->labels(), 100, 2, seed);  // non-IID
///     auto history = train::federated_fit(model, loss, train_set, clients,
///         {.rounds = 50, .fraction = 0.1, .local_epochs = 5, .local_batch_size = 10, .client_lr = 0.05},
///         [&](train::RoundLog& log) { log.metrics["test_accuracy"] = ...; return true; });
///
/// One process or many: the picked clients of a round are dealt over the ranks of
/// tapegrad::distributed (client i of the round's list on rank i mod world_size), every rank runs
/// its clients one after the other in its copy of the model, and the weighted partial sums are
/// added with one all_reduce. With one process (no MPI, or not launched by mpirun) the reduction is
/// the identity, so the in-process run is the same code. Every rank draws the same client choice
/// and the same DP noise from the seed, so all ranks hold the same global weights after each round.
/// Results depend on the world size only through the order of the floating-point sums.
///
/// Deterministic for a seed: client choice, each client's shuffling, masks and noise are derived
/// from (seed, round, client) with a fixed mixing function; the model's initial weights are the
/// caller's.
///
/// Secure aggregation (SecureAggregation): each client sends only its weighted update p_k·Δ_k in
/// fixed point modulo 2^32 plus pairwise masks that cancel in the sum; the server learns the sum
/// and nothing else about any single client. Out of scope: dropped clients (the real protocol
/// secret-shares each client's mask keys so the survivors can remove a dropped client's masks; here
/// every picked client must report), malicious servers or clients, and real key agreement (see
/// SecureAggregation::pair_seed for what stands in for it).
///
/// Differential privacy (DifferentialPrivacyOptions): each client clips Δ_k to L2 norm ≤ S, the
/// average becomes the unweighted mean (1/m)·Σ_k clip(Δ_k), and the server adds Gaussian noise of
/// standard deviation σ·S to the sum, i.e. σ·S/m to each coordinate of the average (one client
/// moves the sum by at most S: the Gaussian mechanism with noise multiplier σ). No privacy
/// accountant is included: ε for a number of rounds is the user's to compute.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"
#include "datasets/dataset.hpp"
#include "nn/module.hpp"

namespace tapegrad::train {

/// The sample indices of each client: clients[k] lists client k's positions in the dataset.
using ClientIndices = std::vector<std::vector<int64_t>>;

/// IID split: a random permutation of 0..n−1 (seeded) cut into `num_clients` consecutive parts whose
/// sizes differ by at most one. Throws std::invalid_argument unless 0 < num_clients ≤ n.
ClientIndices split_iid(int64_t n, int64_t num_clients, uint64_t seed);

/// The paper's non-IID split: the samples sorted by label (stable: ties keep index order), cut into
/// num_clients·shards_per_client shards of n / (num_clients·shards_per_client) samples each, and
/// every client given `shards_per_client` shards drawn at random without replacement (for
/// Fashion-MNIST's 60,000: 200 shards of 300, two per client, so most clients see two labels). A
/// remainder of n mod (number of shards) samples, the last in label order, is left out. `labels`:
/// int64 [N]. Throws std::invalid_argument for a label tensor that is not 1-D int64, non-positive
/// counts, or more shards than samples.
ClientIndices split_label_shards(const Tensor& labels, int64_t num_clients, int64_t shards_per_client, uint64_t seed);

/// The number of distinct labels among each client's samples (labels: int64 [N]).
std::vector<int64_t> distinct_labels_per_client(const Tensor& labels, const ClientIndices& clients);

/// Which federated algorithm a run uses.
enum class Algorithm {
  fedavg,  ///< E local epochs of SGD with batch B, the update is the weight change
  fedsgd,  ///< one gradient of the whole local data (B = ∞), the update is minus that gradient
};

/// Secure aggregation's settings (see SecureAggregation).
struct SecureAggregationOptions {
  bool enabled = false;    ///< mask the updates; the server sees only their sum
  int fraction_bits = 20;  ///< f: fixed-point resolution 2^−f (20: 9.5e−7); 1 ≤ f ≤ 30
};

/// DP-FedAvg's settings: clipping norm S and noise multiplier σ (see the file comment).
struct DifferentialPrivacyOptions {
  double clip_norm = 0.0;         ///< S > 0 clips each client's update to L2 norm ≤ S; 0: off
  double noise_multiplier = 0.0;  ///< σ ≥ 0: noise std σ·S on the sum of clipped updates
};

/// A federated run's knobs, in the paper's names.
struct FederatedOptions {
  Algorithm algorithm = Algorithm::fedavg;  ///< FedAvg or FedSGD
  int64_t rounds = 100;                     ///< communication rounds (the callback may stop earlier)
  double fraction = 0.1;                    ///< C: share of the clients picked each round, 0 < C ≤ 1
  int64_t local_epochs = 5;                 ///< E (FedAvg)
  int64_t local_batch_size = 10;            ///< B (FedAvg); 0: the whole local data, B = ∞
  double client_lr = 0.05;                  ///< η: the clients' SGD learning rate (FedAvg)
  double server_lr = 1.0;                   ///< η_s: w ← w + η_s·Δ (FedSGD's step size)
  uint64_t seed = 0;                        ///< client choice, shuffling, masks, noise
  SecureAggregationOptions secure_aggregation{};  ///< off by default
  DifferentialPrivacyOptions privacy{};           ///< off by default
};

/// What one round did; the callback may add its own metrics.
struct RoundLog {
  int64_t round = 0;                    ///< 1-based
  std::vector<int64_t> clients;         ///< the picked clients, ascending
  double train_loss = 0.0;              ///< Σ p_k · (client k's mean loss over its local steps)
  double update_norm = 0.0;             ///< ‖η_s·Δ‖₂: how far the global weights moved
  std::map<std::string, double> metrics;  ///< the callback's (e.g. "test_accuracy")
};

/// Every round's log, in order.
struct FederatedHistory {
  std::vector<RoundLog> rounds;  ///< one per completed round
  /// The first round whose metrics[key] ≥ threshold, or −1 when none reached it.
  int64_t first_round_reaching(const std::string& key, double threshold) const;
};

/// The loss a client minimises: (model output, targets) → scalar.
using FederatedLossFn = std::function<Tensor(const Tensor& output, const Tensor& targets)>;
/// Called after each round with the global weights in the model (on every rank); returns false to
/// stop. It may write log.metrics.
using RoundCallback = std::function<bool(RoundLog& log)>;

/// Runs options.rounds rounds of FedAvg or FedSGD on `model` (trained in place: it holds the global
/// weights at the end) over `clients` (index sets into `data`). The model's parameters must be
/// float32 or float64; they are the same on every rank at the start (broadcast them when the
/// initialisation differs). Throws std::invalid_argument naming the bad option or client (C outside
/// (0, 1], E or rounds ≤ 0, B < 0, an empty client, an index outside the data, S < 0, σ < 0, σ > 0
/// without S), and SecureAggregation's std::overflow_error for an update outside its range.
FederatedHistory federated_fit(nn::UnaryModule& model, const FederatedLossFn& loss,
                               std::shared_ptr<const datasets::Dataset> data, const ClientIndices& clients,
                               const FederatedOptions& options, const RoundCallback& on_round = {});

/// The m = max(round(fraction·num_clients), 1) clients picked in `round` (ascending), the same on
/// every rank for a seed.
std::vector<int64_t> select_clients(int64_t num_clients, double fraction, uint64_t seed, int64_t round);

/// The seed of client `client`'s shuffling generator in `round` (its DataLoader's seed; it
/// reshuffles every local epoch).
uint64_t client_seed(uint64_t seed, int64_t round, int64_t client);

/// The model's parameters as one float64 vector, in parameters() order.
std::vector<double> flat_parameters(const nn::Module& model);
/// Writes `values` (as flat_parameters lays them out) into the model's parameters, rounding to
/// their dtype. Throws std::invalid_argument when the length differs from the parameter count.
void set_flat_parameters(nn::Module& model, const std::vector<double>& values);

/// Clips `update` in place to L2 norm ≤ clip_norm (scaled by clip_norm / ‖update‖ when longer);
/// returns the norm before clipping.
double clip_update(std::vector<double>& update, double clip_norm);

/// Pairwise-mask secure aggregation in fixed point modulo 2^32 (Bonawitz et al. 2017, without the
/// dropout recovery).
///
/// Encoding: a value v becomes the 32-bit two's complement of round(v·2^f) (f = fraction_bits), so
/// the resolution is 2^−f and the sum of the m clients' encodings decodes exactly (to the rounding
/// of each term, at most m·2^−f−1 in total) as long as it stays in [−2^(31−f), 2^(31−f)). encode()
/// enforces this per client: every |v| must be below 2^(31−f)/m, else std::overflow_error (naming
/// the client, element and value) — a wrap-around would decode to garbage without any sign, so it
/// is refused instead of clamped. With f = 20 and m = 10 the bound is 204.8 per coordinate of a
/// weighted update p_k·Δ_k.
///
/// Masks: for every pair i < j of the round's participants, both derive the seed s_ij =
/// pair_seed(round, i, j) and expand it into a pseudo-random vector r_ij of uniform 32-bit words;
/// client i adds r_ij, client j subtracts it (mod 2^32). In the sum every r_ij appears once with
/// each sign and cancels exactly; a single masked vector is uniform on the 32-bit words whatever
/// the update, so it reveals nothing about it (with m ≥ 2).
class SecureAggregation {
 public:
  /// Masks derived from `seed`; fixed-point resolution 2^−fraction_bits. Throws
  /// std::invalid_argument unless 1 ≤ fraction_bits ≤ 30.
  explicit SecureAggregation(uint64_t seed, int fraction_bits = 20);

  /// 2^−f: one unit of the fixed-point encoding.
  double resolution() const;
  /// 2^(31−f) / participants: the largest magnitude (exclusive) a client may encode.
  double bound(int64_t participants) const;

  /// The shared seed of clients i and j in `round` (symmetric in i, j). Stand-in for key
  /// agreement: here a keyed mixing function of (seed, round, min(i,j), max(i,j)), which anyone who
  /// knows the seed can compute. A real deployment replaces it with Diffie–Hellman key agreement:
  /// each client publishes a public key through the server, s_ij = KDF(DH(sk_i, pk_j)), which only
  /// i and j can compute, and expands it with a cryptographic PRG (AES-CTR, ChaCha20) instead of
  /// the non-cryptographic mixer used by mask().
  uint64_t pair_seed(int64_t round, int64_t i, int64_t j) const;

  /// Fixed-point words of `values` for a round of `participants` clients (see the class comment);
  /// `client` only names the client in the error.
  std::vector<uint32_t> encode(const std::vector<double>& values, int64_t participants, int64_t client) const;
  /// Adds client `client`'s pairwise masks to `words` in place: + r_ij for each participant j >
  /// client, − r_ij for each j < client (mod 2^32). `participants` lists the round's clients, each
  /// once, `client` among them; throws std::invalid_argument otherwise.
  void mask(std::vector<uint32_t>& words, int64_t round, int64_t client, const std::vector<int64_t>& participants) const;
  /// The decoded sum of `words` (the mod-2^32 sum of every participant's masked words): each word
  /// read as a signed 32-bit integer times 2^−f.
  std::vector<double> decode(const std::vector<uint32_t>& words) const;

 private:
  uint64_t seed_;
  int fraction_bits_;
};

/// sum[i] += add[i] modulo 2^32 (the server's accumulation of masked words). Throws
/// std::invalid_argument when the lengths differ.
void add_words(std::vector<uint32_t>& sum, const std::vector<uint32_t>& add);

}  // namespace tapegrad::train
