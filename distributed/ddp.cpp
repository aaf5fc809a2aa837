#include "distributed/ddp.hpp"

#include <cstring>
#include <stdexcept>

#include "autograd/engine.hpp"

namespace tapegrad::distributed {

namespace {
std::string shape_and_dtype(const Tensor& t) {
  return std::string(dtype_name(t.dtype())) + " " + to_string(t.shape());
}
}  // namespace

DistributedDataParallel::DistributedDataParallel(std::shared_ptr<nn::UnaryModule> module, DDPOptions options)
    : module_(std::move(module)), options_(options) {
  if (!module_) throw std::invalid_argument("DistributedDataParallel: the module is null");
  if (!(options_.bucket_cap_mb_ > 0))
    throw std::invalid_argument("DistributedDataParallel: bucket_cap_mb must be positive, got " +
                                std::to_string(options_.bucket_cap_mb_));
  register_module("module", module_);
  if (options_.broadcast_parameters_) broadcast_parameters(*module_, 0);
  for (auto& [name, p] : named_parameters()) {
    if (!p.requires_grad()) continue;
    bool shared = false;  // a parameter registered twice (tied weights) is reduced once
    for (const Tensor& q : params_) shared = shared || q.is_same(p);
    if (shared) continue;
    params_.push_back(p);
    names_.push_back(name);
  }
  if (params_.empty())
    throw std::invalid_argument("DistributedDataParallel: " + module_->repr() + " has no parameter that requires grad");
  build_buckets();
  ready_.assign(params_.size(), 0);
  reset_pass();
  for (size_t i = 0; i < params_.size(); ++i)
    hooks_.push_back(params_[i].register_post_accumulate_grad_hook([this, i](const Tensor&) { on_gradient_ready(i); }));
}

DistributedDataParallel::~DistributedDataParallel() {
  for (auto& h : hooks_) h.remove();
  for (auto& b : buckets_) b.work.wait();  // never free a buffer MPI still writes into
}

void DistributedDataParallel::build_buckets() {
  const double cap = options_.bucket_cap_mb_ * 1024.0 * 1024.0;
  bucket_of_.assign(params_.size(), 0);
  Bucket current;
  double bytes = 0;
  DType dtype = params_.back().dtype();
  auto close = [&] {
    if (current.params.empty()) return;
    int64_t numel = 0;
    for (size_t i : current.params) {
      current.offsets.push_back(numel);
      numel += params_[i].numel();
    }
    current.flat = zeros({numel}, dtype);
    buckets_.push_back(std::move(current));
    current = Bucket();
    bytes = 0;
  };
  for (size_t k = params_.size(); k-- > 0;) {  // reverse registration order
    const Tensor& p = params_[k];
    if (p.dtype() != dtype) {
      close();
      dtype = p.dtype();
    }
    bucket_of_[k] = buckets_.size();
    current.params.push_back(k);
    bytes += static_cast<double>(p.numel()) * static_cast<double>(dtype_size(p.dtype()));
    if (bytes >= cap) close();
  }
  close();
}

std::vector<std::vector<size_t>> DistributedDataParallel::bucket_parameters() const {
  std::vector<std::vector<size_t>> out;
  for (const Bucket& b : buckets_) out.push_back(b.params);
  return out;
}

Tensor DistributedDataParallel::forward(const Tensor& x) {
  if (in_pass_) {
    // The previous backward fired hooks and then threw before its end-of-pass callback: finish
    // what it started (the other ranks wait for it), then refuse to go on silently.
    wait_started();
    reset_pass();
    throw std::runtime_error(
        "DistributedDataParallel::forward: the previous backward pass started a gradient reduction it did "
        "not finish (it threw); its gradients are not averaged. Zero the gradients and redo the step.");
  }
  return (*module_)(x);
}

std::string DistributedDataParallel::repr() const { return "DistributedDataParallel(" + module_->repr() + ")"; }

void DistributedDataParallel::on_gradient_ready(size_t i) {
  if (!sync_) return;
  if (!in_pass_) {
    in_pass_ = true;
    queue_backward_callback([this] { finish(); });
  }
  if (ready_[i]) return;  // a second pass through the same graph before finish (cannot happen)
  ready_[i] = 1;
  ++ready_count_;
  started_before_last_hook_ = next_bucket_;
  Bucket& b = buckets_[bucket_of_[i]];
  --b.pending;
  start_ready_buckets();
  // Open MPI progresses non-blocking collectives inside MPI calls: test the started ones.
  for (size_t k = 0; k < next_bucket_; ++k) buckets_[k].work.done();
}

void DistributedDataParallel::start_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) start_bucket(buckets_[next_bucket_++]);
}

void DistributedDataParallel::start_bucket(Bucket& b) {
  const size_t elem = dtype_size(b.flat.dtype());
  char* flat = b.flat.mutable_data<char>();
  for (size_t j = 0; j < b.params.size(); ++j) {
    const Tensor& p = params_[b.params[j]];
    Tensor g = p.grad();
    char* dst = flat + static_cast<size_t>(b.offsets[j]) * elem;
    if (!g.defined()) {  // unused parameter (find_unused_parameters): a zero contribution
      std::memset(dst, 0, static_cast<size_t>(p.numel()) * elem);
      continue;
    }
    if (g.dtype() != b.flat.dtype() || g.numel() != p.numel() || p.dtype() != b.flat.dtype())
      throw std::runtime_error("DistributedDataParallel: parameter " + names_[b.params[j]] + " is now " +
                               shape_and_dtype(p) + " with a " + shape_and_dtype(g) + " gradient, but its bucket is " +
                               dtype_name(b.flat.dtype()) +
                               ": convert the module (Module::to) before wrapping it in DistributedDataParallel");
    std::memcpy(dst, g.data<char>(), static_cast<size_t>(g.numel()) * elem);
  }
  b.work = all_reduce_async(b.flat, ReduceOp::mean);
}

void DistributedDataParallel::wait_started() {
  for (size_t k = 0; k < next_bucket_; ++k) buckets_[k].work.wait();
}

void DistributedDataParallel::reset_pass() {
  for (Bucket& b : buckets_) {
    b.pending = b.params.size();
  }
  std::fill(ready_.begin(), ready_.end(), 0);
  ready_count_ = 0;
  next_bucket_ = 0;
  in_pass_ = false;
}

void DistributedDataParallel::finish() {
  if (!in_pass_) return;
  if (ready_count_ < params_.size()) {
    if (!options_.find_unused_parameters_) {
      wait_started();
      std::string unused;
      for (size_t i = 0; i < params_.size(); ++i)
        if (!ready_[i]) unused += (unused.empty() ? "" : ", ") + names_[i];
      reset_pass();
      throw std::runtime_error("DistributedDataParallel: these parameters received no gradient in this backward pass: " +
                               unused +
                               ". Their gradients cannot be averaged; make every parameter take part in the loss, "
                               "or construct with DDPOptions().find_unused_parameters(true)");
    }
    for (Bucket& b : buckets_) b.pending = 0;  // the unused ones contribute zeros
    start_ready_buckets();
  }
  for (Bucket& b : buckets_) {
    b.work.wait();
    const size_t elem = dtype_size(b.flat.dtype());
    const char* flat = b.flat.data<char>();
    for (size_t j = 0; j < b.params.size(); ++j) {
      Tensor& p = params_[b.params[j]];
      const char* src = flat + static_cast<size_t>(b.offsets[j]) * elem;
      Tensor g = p.grad();
      if (!g.defined()) {
        g = zeros(p.shape(), p.dtype());
        p.set_grad(g);
      }
      std::memcpy(g.mutable_data<char>(), src, static_cast<size_t>(g.numel()) * elem);
    }
  }
  reset_pass();
}

DistributedDataParallel::NoSync::NoSync(DistributedDataParallel& ddp) : ddp_(ddp), previous_(ddp.sync_) {
  ddp_.sync_ = false;
}

DistributedDataParallel::NoSync::~NoSync() { ddp_.sync_ = previous_; }

nn::UnaryModule& unwrap(nn::UnaryModule& model) {
  auto* ddp = dynamic_cast<DistributedDataParallel*>(&model);
  return ddp ? ddp->module() : model;
}

}  // namespace tapegrad::distributed
