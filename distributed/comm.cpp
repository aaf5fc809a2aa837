#include "distributed/comm.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>

#include "autograd/kernels.hpp"
#include "nn/module.hpp"

#ifdef TAPEGRAD_HAVE_MPI
#include <mpi.h>
#endif

namespace tapegrad::distributed {

namespace {

bool session_alive = false;         // a Session exists now
bool finalized_by_session = false;  // an earlier Session called MPI_Finalize

std::string describe(const Tensor& t) {
  return std::string(dtype_name(t.dtype())) + " tensor of shape " + to_string(t.shape());
}

const char* op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::mean: return "mean";
    case ReduceOp::max: return "max";
  }
  throw std::invalid_argument("distributed: unknown ReduceOp " + std::to_string(static_cast<int>(op)));
}

void check_defined(const char* fn, const Tensor& t) {
  if (!t.defined()) throw std::invalid_argument(std::string(fn) + ": the tensor is undefined");
}

// all_reduce's dtype rules: float32, float64, int64; mean only for floating tensors.
void check_reducible(const char* fn, const Tensor& t, ReduceOp op) {
  check_defined(fn, t);
  const DType d = t.dtype();
  if (d != DType::f32 && d != DType::f64 && d != DType::i64)
    throw DTypeError(std::string(fn) + ": unsupported " + describe(t) + " (float32, float64 or int64)");
  if (op == ReduceOp::mean && d == DType::i64)
    throw DTypeError(std::string(fn) + ": ReduceOp::mean of an " + describe(t) +
                     " (mean needs float32 or float64; use sum and divide)");
  op_name(op);  // rejects a corrupted ReduceOp value
}

// ReduceOp::mean: the sum divided by the world size, in the tensor's dtype.
void divide_by_world(Tensor& t, int n) {
  if (n == 1) return;
  if (t.dtype() == DType::f32) {
    float* p = t.mutable_data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] /= static_cast<float>(n);
  } else {
    double* p = t.mutable_data<double>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] /= static_cast<double>(n);
  }
}

void print_exception(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::cerr << "tapegrad rank " << rank() << ": " << ex.what() << std::endl;
  } catch (...) {
    std::cerr << "tapegrad rank " << rank() << ": unknown exception" << std::endl;
  }
}

std::terminate_handler previous_handler = nullptr;

// Installed by Session: an uncaught exception on one rank ends every rank.
[[noreturn]] void terminate_handler() {
  if (auto e = std::current_exception()) print_exception(e);
  if (is_initialized()) abort(1);
  if (previous_handler) previous_handler();
  std::abort();
}

[[maybe_unused]] int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

#ifdef TAPEGRAD_HAVE_MPI
void check_mpi(int code, const char* fn) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw std::runtime_error(std::string(fn) + ": MPI error: " + std::string(text, static_cast<size_t>(len)));
}

MPI_Datatype mpi_type(DType d) {
  switch (d) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i64: return MPI_INT64_T;
    case DType::b8: return MPI_BYTE;
  }
  throw_unknown_dtype(d);
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::max ? MPI_MAX : MPI_SUM; }

int mpi_count(const char* fn, const Tensor& t) {
  if (t.numel() > INT_MAX)
    throw std::invalid_argument(std::string(fn) + ": " + describe(t) + " has more than INT_MAX elements");
  return static_cast<int>(t.numel());
}

void* mpi_buffer(Tensor& t) {
  return kernels::dispatch_all(t.dtype(), [&](auto z) -> void* { return t.mutable_data<decltype(z)>(); });
}
#endif

}  // namespace

bool built_with_mpi() {
#ifdef TAPEGRAD_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool launched_by_mpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
}

Session::Session([[maybe_unused]] int* argc, [[maybe_unused]] char*** argv) {
  if (session_alive) throw std::logic_error("distributed::Session: a Session is already alive (one per process)");
  const char* forced = std::getenv("TAPEGRAD_DISTRIBUTED");
  const bool force = forced && std::string(forced) == "1";
#ifdef TAPEGRAD_HAVE_MPI
  if (finalized_by_session)
    throw std::logic_error("distributed::Session: MPI was finalised by an earlier Session and cannot start again");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized && (launched_by_mpi() || force)) {
    int provided = 0;
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "distributed::Session");
    owns_mpi_ = true;
    initialized = 1;
  }
  // Errors come back as codes, which the collectives turn into exceptions naming themselves.
  if (initialized) MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
#else
  // Without MPI, N copies launched by mpirun would each train alone on everything: refuse.
  const int size = std::max(env_int("OMPI_COMM_WORLD_SIZE"), env_int("PMI_SIZE"));
  if (size > 1)
    throw std::runtime_error("distributed::Session: launched by an MPI launcher with " + std::to_string(size) +
                             " processes, but tapegrad was built without MPI (configure with -DTAPEGRAD_MPI=ON "
                             "and install libopenmpi-dev)");
  (void)force;
#endif
  session_alive = true;
  previous_handler = std::set_terminate(terminate_handler);
}

Session::~Session() {
  if (std::uncaught_exceptions() > 0 && is_initialized() && world_size() > 1) {
    std::cerr << "tapegrad rank " << rank() << ": an exception is leaving the distributed::Session scope; "
              << "aborting every rank" << std::endl;
    abort(1);
  }
  std::set_terminate(previous_handler);
  session_alive = false;
#ifdef TAPEGRAD_HAVE_MPI
  if (owns_mpi_) {
    MPI_Finalize();
    finalized_by_session = true;
  }
#endif
}

bool is_initialized() {
#ifdef TAPEGRAD_HAVE_MPI
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
#else
  return false;
#endif
}

int rank() {
#ifdef TAPEGRAD_HAVE_MPI
  if (!is_initialized()) return 0;
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
#else
  return 0;
#endif
}

int world_size() {
#ifdef TAPEGRAD_HAVE_MPI
  if (!is_initialized()) return 1;
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
#else
  return 1;
#endif
}

void barrier() {
#ifdef TAPEGRAD_HAVE_MPI
  if (is_initialized()) check_mpi(MPI_Barrier(MPI_COMM_WORLD), "distributed::barrier");
#endif
}

void all_reduce(Tensor& t, ReduceOp op) { all_reduce_async(t, op).wait(); }

double all_reduce_value(double value, ReduceOp op) {
  Tensor t = scalar(value, DType::f64);
  all_reduce(t, op);
  return t.item();
}

void broadcast(Tensor& t, int root) {
  check_defined("distributed::broadcast", t);
  if (root < 0 || root >= world_size())
    throw std::out_of_range("distributed::broadcast: root " + std::to_string(root) + " outside [0, " +
                            std::to_string(world_size()) + ") for a " + describe(t));
#ifdef TAPEGRAD_HAVE_MPI
  if (is_initialized() && world_size() > 1) {
    check_mpi(MPI_Bcast(mpi_buffer(t), mpi_count("distributed::broadcast", t), mpi_type(t.dtype()), root,
                        MPI_COMM_WORLD),
              "distributed::broadcast");
    return;
  }
#endif
  t.bump_version();  // the identity is still an in-place op
}

struct Work::State {
  Tensor tensor;         // kept alive while MPI writes into it
  ReduceOp op = ReduceOp::sum;
  bool complete = true;  // the result is in `tensor`
#ifdef TAPEGRAD_HAVE_MPI
  MPI_Request request = MPI_REQUEST_NULL;
#endif

  void finish() {
    complete = true;
    if (op == ReduceOp::mean) divide_by_world(tensor, world_size());
  }
  ~State() {
    // Nobody waited: wait here rather than free the buffer while MPI may still write into it.
    if (!complete) {
#ifdef TAPEGRAD_HAVE_MPI
      if (is_initialized()) MPI_Wait(&request, MPI_STATUS_IGNORE);
#endif
    }
  }
};

Work::Work() : state_(std::make_shared<State>()) {}
Work::Work(std::shared_ptr<State> state) : state_(std::move(state)) {}

void Work::wait() {
  if (state_->complete) return;
#ifdef TAPEGRAD_HAVE_MPI
  check_mpi(MPI_Wait(&state_->request, MPI_STATUS_IGNORE), "distributed::Work::wait");
#endif
  state_->finish();
}

bool Work::done() {
  if (state_->complete) return true;
#ifdef TAPEGRAD_HAVE_MPI
  int flag = 0;
  check_mpi(MPI_Test(&state_->request, &flag, MPI_STATUS_IGNORE), "distributed::Work::done");
  if (!flag) return false;
#endif
  state_->finish();
  return true;
}

Work all_reduce_async(Tensor& t, ReduceOp op) {
  check_reducible("distributed::all_reduce", t, op);
  auto state = std::make_shared<Work::State>();
  state->tensor = t;
  state->op = op;
#ifdef TAPEGRAD_HAVE_MPI
  if (is_initialized() && world_size() > 1) {
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, mpi_buffer(t), mpi_count("distributed::all_reduce", t),
                             mpi_type(t.dtype()), mpi_op(op), MPI_COMM_WORLD, &state->request),
              "distributed::all_reduce");
    state->complete = false;
    return Work(std::move(state));
  }
#endif
  t.bump_version();  // the identity is still an in-place op: saved copies of `t` see it
  return Work(std::move(state));
}

void broadcast_parameters(nn::Module& m, int root) {
  for (Tensor& p : m.parameters()) broadcast(p, root);
  for (Tensor& b : m.buffers()) broadcast(b, root);
}

void abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
#ifdef TAPEGRAD_HAVE_MPI
  if (is_initialized()) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::_Exit(code);
}

int run_or_abort(const std::function<int()>& fn) {
  try {
    return fn();
  } catch (...) {
    print_exception(std::current_exception());
    abort(1);
  }
}

}  // namespace tapegrad::distributed
