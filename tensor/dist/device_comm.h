// The device side of a process group: collectives on CUDA tensors (NCCL, tensor/dist/nccl_cuda.cpp).
// Internal to tensor/dist: the MPI group owns one and hands it every CUDA tensor; the bootstrap
// (sharing NCCL's unique id) goes through the host group's broadcast of a small CPU tensor.
#pragma once
#include <functional>
#include <memory>

#include "tensor/dist/process_group.h"

namespace sx::dist {

class DeviceComm {
 public:
  virtual ~DeviceComm() = default;
  virtual std::shared_ptr<Work> all_reduce_async(Tensor t, ReduceOp op, double timeout_s) = 0;
  virtual void broadcast(const Tensor& t, int root, double timeout_s) = 0;
  virtual Tensor all_gather(const Tensor& t, double timeout_s) = 0;
};

// The NCCL communicator of `rank` of `size` on `device`; share_id broadcasts a CPU uint8 tensor
// from rank 0 (the unique id). Defined only in CUDA builds with NCCL (SX_WITH_NCCL).
std::unique_ptr<DeviceComm> make_nccl_comm(int rank, int size, Device device,
                                           const std::function<void(const Tensor&)>& share_id);

// make_nccl_comm when NCCL was built, else throws NotBuiltError (process_group.cpp).
std::unique_ptr<DeviceComm> make_device_comm(int rank, int size, Device device,
                                             const std::function<void(const Tensor&)>& share_id);

// The MPI group (tensor/dist/mpi_group_mpi.cpp, built only with MPI: SX_WITH_MPI).
std::shared_ptr<ProcessGroup> make_mpi_group(double timeout_s, Device device);

// The group of environment-variable launch (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT without mpirun): NCCL on cuda:LOCAL_RANK, its id shared by the TCP rendezvous; a
// CPU `device` throws ValueError (env_group.cpp).
std::shared_ptr<ProcessGroup> make_env_group(double timeout_s, Device device);

}  // namespace sx::dist
