// The process group of data-parallel training (sx::dist): who this process is among the ranks of a
// run, and the collectives the trainer needs (all_reduce sum/avg, broadcast, all_gather, barrier).
//
// Engines (no home-made transport):
//   - CPU tensors go through MPI (OpenMPI), which also starts the processes (mpirun / srun).
//   - CUDA tensors go through NCCL on a stream of its own (tensor/dist/nccl_cuda.cpp, compiled only
//     in CUDA builds that found nccl.h); its unique id is shared over MPI (llm.c's bootstrap).
//   - Without MPI at build time (or outside mpirun/srun) the group is the single process: rank 0 of 1,
//     every collective a no-op. So the code builds and runs everywhere, as CUDA does.
//
// Every collective is asynchronous underneath (MPI_I*, or NCCL on its stream) and is waited for with
// a deadline (timeout_s): a rank that died or hangs makes the others throw DistError naming the
// collective and the time waited, never a silent hang. A rank that fails with an exception calls
// report_failure(): the others, polling while they wait, throw DistError "rank R failed: <what>".
//
// Collectives must be called by every rank in the same order (as MPI and NCCL require). Tensors are
// reduced in place and must be contiguous; their dtype must be float32, float64 or int64.
// dup() makes a second group of the same ranks on a communicator of its own (MPI_Comm_dup, a new
// NCCL communicator): its collectives never pair with the parent's, so a layer can run collectives
// of its own (SyncBatchNorm's statistics, inside forward and backward) while the parent's gradient
// buckets are in flight, each communicator keeping its own order.
#pragma once
#include <memory>
#include <string>

#include "tensor/device.h"
#include "tensor/errors.h"
#include "tensor/tensor.h"

namespace sx {
// A collective that failed: timed out, or another rank reported a failure.
struct DistError : Error {
  using Error::Error;
};
}  // namespace sx

namespace sx::dist {

enum class ReduceOp { Sum, Avg };

// A launched collective. wait() blocks (with the group's deadline) until its result is in place;
// test() says whether it is done without blocking (and drives MPI's progress).
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes of this machine (picks the GPU)
  virtual std::string backend() const = 0;  // "single", "mpi", "mpi+nccl"

  // In place; Avg divides by size() once the sum is in.
  virtual std::shared_ptr<Work> all_reduce_async(Tensor t, ReduceOp op) = 0;
  void all_reduce(const Tensor& t, ReduceOp op) { all_reduce_async(t, op)->wait(); }
  // Rank `root`'s values into t on every rank.
  virtual void broadcast(const Tensor& t, int root) = 0;
  // Every rank's t (same shape on every rank) stacked along a new first dim: [size, ...t.shape].
  virtual Tensor all_gather(const Tensor& t) = 0;
  virtual void barrier() = 0;
  // Tells the other ranks that this one fails with `what` (they throw DistError naming it).
  virtual void report_failure(const std::string& what) = 0;
  // The same ranks on a new communicator (collective: every rank calls it, at the same point).
  virtual std::shared_ptr<ProcessGroup> dup() = 0;

  double timeout_s() const { return timeout_s_; }
  void set_timeout(double s) { timeout_s_ = s; }

 protected:
  double timeout_s_ = 600;
};

// The group of one process: rank 0 of 1, collectives do nothing (Avg of one is itself).
std::shared_ptr<ProcessGroup> single_process_group();

// "off": the single process. "auto": MPI when the process was started by mpirun/srun (OpenMPI,
// PMI or PMIx environment) and spinexr was built with MPI; else a WORLD_SIZE > 1 (RANK, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT: torchrun style) is NCCL through a TCP rendezvous (CUDA devices only,
// a CPU device is refused: launch CPU ranks with mpirun); else the single process.
// With a CUDA `device` and NCCL built, CUDA tensors go through NCCL. Created once per process
// (MPI can be initialised once); later calls return the same group.
std::shared_ptr<ProcessGroup> init_process_group(const std::string& mode, double timeout_s, Device device);

// Whether this build has MPI / NCCL.
bool mpi_built();
bool nccl_built();

// The device a rank trains on: cuda:local_rank for a CUDA device of a multi-rank group.
Device rank_device(const ProcessGroup& pg, Device requested);

}  // namespace sx::dist
