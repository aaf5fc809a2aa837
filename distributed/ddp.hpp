#pragma once
/// \file ddp.hpp
/// DistributedDataParallel: data-parallel training of one model over the ranks of the MPI world
/// (PyTorch's torch.nn.parallel.DistributedDataParallel). Every rank holds a replica, runs forward
/// and backward on its own shard of the batch, and the gradients are averaged over the ranks
/// during backward, so the optimizer steps every replica identically:
///
///     distributed::Session session(&argc, &argv);
///     auto model = std::make_shared<Net>();
///     auto ddp = std::make_shared<distributed::DistributedDataParallel>(model);  // broadcasts rank 0's weights
///     optim::SGD opt(ddp->parameters(), 0.1);
///     for (...) {                                  // each rank: its own batch (DistributedSampler)
///       opt.zero_grad();
///       Tensor loss = cross_entropy((*ddp)(x), y);
///       loss.backward();                           // returns with averaged gradients
///       opt.step();
///     }
///
/// How: the parameters that require grad are grouped into buckets of about `bucket_cap_mb` MB, in
/// reverse registration order (roughly the order backward produces their gradients), one dtype per
/// bucket. A post-accumulate-grad hook on each parameter (Tensor::register_post_accumulate_grad_hook)
/// marks it ready when its gradient is complete; when every parameter of a bucket is ready, its
/// gradients are copied into the bucket's flat buffer and a non-blocking all-reduce starts
/// (MPI_Iallreduce), while backward goes on with the earlier layers. Buckets start in index order
/// (every rank issues the same collectives in the same order). At the end of the backward pass an
/// engine callback (queue_backward_callback) waits for every bucket, divides by world_size() and
/// copies the averages back into the parameters' grad(): when backward() returns, the gradients are
/// averaged; there is no separate call to forget. `finish()` does the same by hand and is a no-op
/// when nothing is pending.
///
/// Gradient accumulation: inside a `no_sync()` scope the hooks do nothing, so grad() accumulates
/// the local micro-batches; the first backward outside the scope all-reduces the accumulated sums.
///
/// Parameters that receive no gradient in a backward pass (a branch the forward did not take):
/// by default finish() throws std::runtime_error naming them, after waiting for the buckets already
/// started (the other ranks, running the same model, reach the same error; a rank that does not
/// is ended by Session's abort). With `find_unused_parameters(true)` they count as a zero local
/// contribution and receive the average of the other ranks' gradients (zeros when no rank used
/// them), so every replica stays identical.
///
/// Not thread-safe: one backward at a time through a DistributedDataParallel. Convert the model's
/// dtype (Module::to) before wrapping it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distributed/comm.hpp"
#include "nn/module.hpp"

namespace tapegrad::distributed {

/// Options of DistributedDataParallel, with chainable setters.
struct DDPOptions {
  /// Target bucket size in MiB (2^20 bytes, as PyTorch): a bucket closes once it holds at least
  /// this much, so a parameter larger than the cap gets a bucket of its own. Default 25 (PyTorch's).
  DDPOptions& bucket_cap_mb(double mb) {
    bucket_cap_mb_ = mb;
    return *this;
  }
  /// Whether a parameter without a gradient in a pass counts as a zero contribution (true) or
  /// is an error (false, the default, as in PyTorch).
  DDPOptions& find_unused_parameters(bool on) {
    find_unused_parameters_ = on;
    return *this;
  }
  /// Whether construction broadcasts rank 0's parameters and buffers (default true).
  DDPOptions& broadcast_parameters(bool on) {
    broadcast_parameters_ = on;
    return *this;
  }
  double bucket_cap_mb_ = 25;          ///< see bucket_cap_mb()
  bool find_unused_parameters_ = false;  ///< see find_unused_parameters()
  bool broadcast_parameters_ = true;   ///< see broadcast_parameters()
};

/// Wraps a one-input module for data-parallel training (see the file comment). It is itself a
/// UnaryModule whose only child is the wrapped module, registered as "module" (parameter names
/// "module.fc1.weight", as in PyTorch), so optimizers, state_dict and a training loop take it as
/// they take any model. Not copyable (its hooks point to it); hold it in a shared_ptr.
class DistributedDataParallel : public nn::UnaryModule {
 public:
  /// Broadcasts rank 0's parameters and buffers (unless options say not to), builds the buckets
  /// and registers the hooks. Throws std::invalid_argument for a null module, a non-positive
  /// bucket_cap_mb, or a module without parameters that require grad.
  explicit DistributedDataParallel(std::shared_ptr<nn::UnaryModule> module, DDPOptions options = {});
  /// Removes the hooks (after waiting for any all-reduce still in flight).
  ~DistributedDataParallel() override;
  DistributedDataParallel(const DistributedDataParallel&) = delete;             ///< hooks point here
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;  ///< hooks point here

  /// The wrapped module's forward. Throws std::runtime_error when the previous backward started a
  /// reduction it did not finish (it threw midway), after waiting for what it started.
  Tensor forward(const Tensor& x) override;
  /// "DistributedDataParallel(<module>)".
  std::string repr() const override;

  /// The wrapped module.
  nn::UnaryModule& module() const { return *module_; }

  /// Completes the pending reduction: starts the buckets not started yet (unused parameters:
  /// see the file comment), waits for all, averages and copies back into grad(). Called
  /// automatically at the end of every backward pass that fired a hook; a no-op otherwise.
  void finish();

  /// RAII scope in which backward passes only accumulate local gradients (no communication).
  class NoSync {
   public:
    /// Disables synchronisation on `ddp` until destruction (restores the previous state).
    explicit NoSync(DistributedDataParallel& ddp);
    ~NoSync();
    NoSync(const NoSync&) = delete;             ///< a scope
    NoSync& operator=(const NoSync&) = delete;  ///< a scope

   private:
    DistributedDataParallel& ddp_;  ///< the wrapped DDP
    bool previous_;                 ///< its sync state before the scope
  };
  /// `auto guard = ddp.no_sync();`: see NoSync (gradient accumulation over micro-batches).
  [[nodiscard]] NoSync no_sync() { return NoSync(*this); }

  /// The number of buckets.
  size_t bucket_count() const { return buckets_.size(); }
  /// For each bucket, the indices (into parameters()) of its parameters, in bucket order.
  std::vector<std::vector<size_t>> bucket_parameters() const;
  /// How many buckets the last synchronised backward pass had started when its last hook fired
  /// (before that hook started its own): more than 0 shows communication overlapping backward.
  size_t buckets_started_before_last_hook() const { return started_before_last_hook_; }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    std::vector<int64_t> offsets;  // element offset of each in `flat`
    Tensor flat;                 // the bucket's gradients, contiguous
    size_t pending = 0;          // parameters not ready yet in this pass
    Work work;
  };
  void build_buckets();
  void on_gradient_ready(size_t param);
  void start_ready_buckets();
  void start_bucket(Bucket& b);
  void reset_pass();
  void wait_started();

  std::shared_ptr<nn::UnaryModule> module_;
  DDPOptions options_;
  std::vector<Tensor> params_;             // parameters that require grad, registration order
  std::vector<std::string> names_;         // their dotted names
  std::vector<size_t> bucket_of_;          // param -> bucket
  std::vector<char> ready_;                // param got its gradient in this pass
  std::vector<Bucket> buckets_;
  std::vector<HookHandle> hooks_;
  size_t next_bucket_ = 0;                 // the next bucket to start (in index order)
  size_t ready_count_ = 0;                 // parameters ready in this pass
  size_t started_before_last_hook_ = 0;
  bool in_pass_ = false;                   // a hook fired; finish() has not run
  bool sync_ = true;                       // false inside no_sync()
};

/// The module `model` wraps when it is a DistributedDataParallel, else `model` itself: what to save,
/// load or inspect, with the names a single process uses (no "module." prefix).
nn::UnaryModule& unwrap(nn::UnaryModule& model);

}  // namespace tapegrad::distributed
