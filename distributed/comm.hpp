#pragma once
/// \file comm.hpp
/// Collective communication between the processes of one training job, over MPI.
///
/// Always compiled. When tapegrad was built with MPI (CMake's FindMPI found Debian's
/// libopenmpi-dev; option TAPEGRAD_MPI) and the program was launched by `mpirun`, the world is
/// the MPI job: `rank()` in [0, world_size()), and the collectives below move data between the
/// processes. Otherwise — built without MPI, or started as a plain process — the world is one
/// process (rank 0, size 1) and every collective is the identity, so the same program runs alone
/// and under `mpirun -np N` unchanged:
///
///     int main(int argc, char** argv) {
///       tapegrad::distributed::Session session(&argc, &argv);   // MPI_Init_thread under mpirun
///       tapegrad::Tensor loss = ...;
///       tapegrad::distributed::all_reduce(loss, tapegrad::distributed::ReduceOp::mean);
///       if (tapegrad::distributed::rank() == 0) std::cout << loss.item() << "\n";
///     }
///
/// Launch detection: `Session` initialises MPI only when the environment says the process was
/// started by an MPI launcher (Open MPI's `OMPI_COMM_WORLD_SIZE`, or `PMI_SIZE` / `PMIX_RANK` of
/// Slurm, Hydra and PMIx launchers), or when `TAPEGRAD_DISTRIBUTED=1` forces it (a singleton MPI
/// world of one). A plain `./program` therefore never touches MPI, even in an MPI-enabled build.
///
/// Errors: every collective must be called by every rank, in the same order, with tensors of the
/// same shape and dtype. A rank that fails while the others wait in a collective would hang them;
/// `Session` prevents that: an uncaught exception (std::terminate), or a `Session` destroyed by
/// stack unwinding, calls `abort()`, which ends every rank (MPI_Abort). `run_or_abort(fn)` does the
/// same for an exception that `fn` throws, printing its message first.
///
/// Thread safety: the collectives are called from one thread at a time (MPI_THREAD_SERIALIZED).
#include <functional>
#include <memory>

#include "autograd/tensor.hpp"

namespace tapegrad::nn {
class Module;
}

namespace tapegrad::distributed {

/// True when tapegrad was compiled with MPI support (TAPEGRAD_MPI found MPI at build time).
bool built_with_mpi();

/// True when the environment says this process was launched by an MPI launcher (`mpirun`,
/// `srun`, `mpiexec`): OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK is set.
bool launched_by_mpi();

/// The lifetime of the distributed world: the constructor calls MPI_Init_thread (when built with
/// MPI and launched by an MPI launcher, or forced with TAPEGRAD_DISTRIBUTED=1), the destructor
/// MPI_Finalize. One per process, alive while collectives are used (typically a local of main).
/// If the program initialised MPI itself, Session uses that world and leaves finalisation to it.
/// Without MPI, Session does nothing and the world is one process. The constructor also installs a
/// std::terminate handler that calls `abort()`, so an uncaught exception on one rank ends them all.
class Session {
 public:
  /// Starts the world. `argc`/`argv` are handed to MPI_Init_thread (may be null). Throws
  /// std::logic_error when a Session is already alive, or when MPI was finalised by an earlier
  /// Session (MPI cannot be initialised twice in one process).
  explicit Session(int* argc = nullptr, char*** argv = nullptr);
  /// MPI_Finalize, when this Session initialised MPI. During stack unwinding (an exception leaving
  /// the scope) it calls `abort()` instead: the other ranks may be blocked in a collective this rank
  /// will never join. Restores the previous std::terminate handler.
  ~Session();
  Session(const Session&) = delete;             ///< one per process
  Session& operator=(const Session&) = delete;  ///< one per process

 private:
  bool owns_mpi_ = false;  ///< this Session called MPI_Init_thread and will call MPI_Finalize
};

/// True while the MPI world is initialised (a Session started it, or the program did).
bool is_initialized();
/// This process's rank in [0, world_size()); 0 when not initialised.
int rank();
/// The number of processes in the world; 1 when not initialised.
int world_size();
/// Blocks until every rank has called barrier(). A no-op in a world of one.
void barrier();

/// The reduction of all_reduce.
enum class ReduceOp {
  sum,   ///< the elementwise sum over ranks
  mean,  ///< the sum divided by world_size() (float32 / float64 only)
  max    ///< the elementwise maximum over ranks
};

/// Replaces `t`, on every rank, by the elementwise reduction of the ranks' `t`. In place (the
/// tensor's version is bumped; shares the storage of every view). `t` must have the same shape and
/// dtype on every rank; dtypes float32, float64 and int64 (`mean` only for floating tensors).
/// Throws DTypeError naming the op, the dtype and the shape otherwise. The identity in a world of
/// one. Reductions are in rank order for a given MPI build: every rank receives the same bits.
void all_reduce(Tensor& t, ReduceOp op = ReduceOp::sum);

/// Copies root's `t` into `t` on every other rank (in place; any dtype). `t` must have the same
/// shape and dtype on every rank. Throws std::out_of_range for a root outside [0, world_size()).
void broadcast(Tensor& t, int root = 0);

/// all_reduce of one number (a loss, an accuracy, a sample count), e.g. for a training loop that
/// reports metrics over all ranks: `double loss = all_reduce_value(local_loss, ReduceOp::mean)`.
double all_reduce_value(double value, ReduceOp op = ReduceOp::sum);

/// A non-blocking collective in flight (all_reduce_async). Copies share the same operation. The
/// tensor is kept alive until the operation completes; the last copy's destructor waits for an
/// operation nobody waited for, so the buffer is never freed under MPI's feet.
class Work {
 public:
  /// A completed no-op (what a world of one returns).
  Work();
  /// Blocks until the collective has completed and its result is in the tensor (for
  /// ReduceOp::mean, divided by world_size()). Idempotent.
  void wait();
  /// True when the collective has completed (then the result is in the tensor, as after wait()).
  /// Never blocks.
  bool done();

  struct State;  ///< implementation (the MPI request and the tensor)
  /// Wraps a started operation (used by all_reduce_async).
  explicit Work(std::shared_ptr<State> state);

 private:
  std::shared_ptr<State> state_;  ///< shared by the copies
};

/// Starts all_reduce(t, op) without waiting (MPI_Iallreduce) and returns its Work. The same rules
/// as all_reduce; `t` must not be read or written until the Work is done. Every rank must start the
/// same non-blocking collectives in the same order.
Work all_reduce_async(Tensor& t, ReduceOp op = ReduceOp::sum);

/// Broadcasts every parameter and buffer of `m` from `root` (in the order of parameters() then
/// buffers()), so every rank starts from root's weights. The modules must have the same structure
/// on every rank.
void broadcast_parameters(nn::Module& m, int root = 0);

/// Ends every rank of the job with exit status `code` (MPI_Abort). Without an MPI world, flushes
/// stdout/stderr and exits the process with `code`.
[[noreturn]] void abort(int code = 1);

/// Runs `fn` and returns its result code; if `fn` throws, prints "tapegrad rank R: <what>" to
/// stderr and calls abort(1), so the other ranks do not wait forever in a collective.
int run_or_abort(const std::function<int()>& fn);

}  // namespace tapegrad::distributed
