// The process group of environment-variable launch (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT, as torchrun sets them; no mpirun): NCCL alone carries the collectives, its unique
// id shared through the TCP rendezvous (rendezvous.h). There is no host transport, so CPU tensors
// are refused with a clear error: CPU training of more than one rank is launched with mpirun.
#include <cstring>

#include "tensor/dist/device_comm.h"
#include "tensor/dist/rendezvous.h"

namespace sx::dist {
namespace {

class EnvNcclGroup : public ProcessGroup {
 public:
  EnvNcclGroup(const RendezvousEnv& env, double timeout_s, Device device) : env_(env) {
    timeout_s_ = timeout_s;
    Device mine = Device::cuda(env.local_rank);
    comm_ = make_device_comm(env.rank, env.world_size, mine, [&](const Tensor& id) {
      std::vector<std::uint8_t> bytes(static_cast<std::size_t>(id.numel()));
      std::memcpy(bytes.data(), id.data_ptr(), bytes.size());
      auto got = rendezvous_share_bytes(env_, env_.rank == 0 ? bytes : std::vector<std::uint8_t>{},
                                        bytes.size(), timeout_s_);
      std::memcpy(id.data_ptr(), got.data(), got.size());
    });
    device_ = mine;
    (void)device;
  }
  int rank() const override { return env_.rank; }
  int size() const override { return env_.world_size; }
  int local_rank() const override { return env_.local_rank; }
  std::string backend() const override { return "env+nccl"; }
  std::shared_ptr<Work> all_reduce_async(Tensor t, ReduceOp op) override {
    need_cuda(t);
    return comm_->all_reduce_async(t, op, timeout_s_);
  }
  void broadcast(const Tensor& t, int root) override {
    need_cuda(t);
    comm_->broadcast(t, root, timeout_s_);
  }
  Tensor all_gather(const Tensor& t) override {
    need_cuda(t);
    return comm_->all_gather(t, timeout_s_);
  }
  void barrier() override { all_reduce(Tensor::zeros({1}, DType::Float32, device_), ReduceOp::Sum); }
  // A second NCCL communicator of the same ranks; its unique id goes out on this one (as int64
  // words of a CUDA tensor: NCCL has no host channel here).
  std::shared_ptr<ProcessGroup> dup() override {
    auto share = [this](const Tensor& id) {
      const int64_t words = (id.numel() + 7) / 8;
      Tensor w = Tensor::zeros({words}, DType::Int64);
      std::memcpy(w.data_ptr(), id.data_ptr(), static_cast<std::size_t>(id.numel()));
      Tensor d = w.to(device_);
      comm_->broadcast(d, 0, timeout_s_);
      std::memcpy(id.data_ptr(), d.cpu().data_ptr(), static_cast<std::size_t>(id.numel()));
    };
    return std::shared_ptr<ProcessGroup>(
        new EnvNcclGroup(env_, timeout_s_, device_, make_device_comm(env_.rank, env_.world_size, device_, share)));
  }
  // No host channel to tell the others: they stop at their collective deadline instead.
  void report_failure(const std::string&) override {}

 private:
  EnvNcclGroup(const RendezvousEnv& env, double timeout_s, Device device, std::unique_ptr<DeviceComm> comm)
      : env_(env), device_(device), comm_(std::move(comm)) {
    timeout_s_ = timeout_s;
  }
  static void need_cuda(const Tensor& t) {
    SX_CHECK(t.is_cuda(), "dist: a group launched by environment variables (WORLD_SIZE without mpirun) "
             "carries CUDA tensors only (NCCL); CPU training of several ranks is launched with mpirun");
  }
  RendezvousEnv env_;
  Device device_;
  std::unique_ptr<DeviceComm> comm_;
};

}  // namespace

std::shared_ptr<ProcessGroup> make_env_group(double timeout_s, Device device) {
  RendezvousEnv env = rendezvous_env_from_environment();
  SX_CHECK(device.is_cuda(), "dist: WORLD_SIZE=", env.world_size, " without mpirun needs a CUDA device "
           "(NCCL through the MASTER_ADDR:MASTER_PORT rendezvous); CPU training of several ranks is "
           "launched with mpirun -np N, or pass --dist off");
  return std::make_shared<EnvNcclGroup>(env, timeout_s, device);
}

}  // namespace sx::dist
