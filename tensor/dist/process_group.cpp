// The single-process group and the factory (see process_group.h). This file is the only place the
// build's MPI / NCCL switches (SX_WITH_MPI, SX_WITH_NCCL) are looked at: the MPI group lives in
// mpi_group_mpi.cpp (compiled only when CMake found MPI) and NCCL in nccl_cuda.cpp (CUDA builds
// with NCCL), so no other code carries #ifdefs.
#include "tensor/dist/process_group.h"

#include <cstdlib>
#include <mutex>

#include "tensor/dist/device_comm.h"

namespace sx::dist {
namespace {

class DoneWork : public Work {
 public:
  void wait() override {}
  bool test() override { return true; }
};

class SingleGroup : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string backend() const override { return "single"; }
  std::shared_ptr<Work> all_reduce_async(Tensor, ReduceOp) override { return std::make_shared<DoneWork>(); }
  void broadcast(const Tensor&, int root) override {
    SX_CHECK(root == 0, "dist: broadcast root ", root, " out of range for 1 rank");
  }
  Tensor all_gather(const Tensor& t) override { return t.contiguous().unsqueeze(0).clone(); }
  void barrier() override {}
  void report_failure(const std::string&) override {}
  std::shared_ptr<ProcessGroup> dup() override {
    auto g = std::make_shared<SingleGroup>();
    g->set_timeout(timeout_s_);
    return g;
  }
};

bool env_set(const char* name) { return std::getenv(name) != nullptr; }

// Started by an MPI launcher: OpenMPI's mpirun, or srun / mpiexec through PMI or PMIx.
bool launched_by_mpi() {
  return env_set("OMPI_COMM_WORLD_SIZE") || env_set("PMI_SIZE") || env_set("PMIX_RANK") || env_set("PMI_RANK");
}

}  // namespace

bool mpi_built() {
#ifdef SX_WITH_MPI
  return true;
#else
  return false;
#endif
}

bool nccl_built() {
#ifdef SX_WITH_NCCL
  return true;
#else
  return false;
#endif
}

std::shared_ptr<ProcessGroup> single_process_group() { return std::make_shared<SingleGroup>(); }

std::shared_ptr<ProcessGroup> init_process_group(const std::string& mode, double timeout_s, Device device) {
  SX_CHECK(mode == "auto" || mode == "off", "dist: --dist must be auto or off, got '", mode, "'");
  SX_CHECK(timeout_s > 0, "dist: the timeout must be > 0 seconds, got ", timeout_s);
  static std::mutex mu;
  static std::shared_ptr<ProcessGroup> mpi_group;  // MPI is initialised once per process
  std::lock_guard<std::mutex> lk(mu);
  if (mode == "off") return single_process_group();
  if (launched_by_mpi()) {
#ifdef SX_WITH_MPI
    if (!mpi_group) mpi_group = make_mpi_group(timeout_s, device);
    mpi_group->set_timeout(timeout_s);
    return mpi_group;
#else
    if (const char* n = std::getenv("OMPI_COMM_WORLD_SIZE"); n && std::atoi(n) > 1)
      SX_THROW(ValueError, "dist: started by mpirun with ", n, " processes, but spinexr was built without MPI "
               "(install libopenmpi-dev and rebuild), or pass --dist off");
    return single_process_group();
#endif
  }
  // Environment-variable launch (torchrun style): NCCL with the TCP rendezvous (env_group.cpp).
  static std::shared_ptr<ProcessGroup> env_group;
  if (const char* ws = std::getenv("WORLD_SIZE"); ws && std::atoi(ws) > 1) {
    if (!env_group) env_group = make_env_group(timeout_s, device);
    env_group->set_timeout(timeout_s);
    return env_group;
  }
  return single_process_group();
}

Device rank_device(const ProcessGroup& pg, Device requested) {
  if (!requested.is_cuda() || pg.size() == 1) return requested;
  return Device::cuda(pg.local_rank());
}

#ifdef SX_WITH_NCCL
// Reached only from the MPI group (mpi_group_mpi.cpp) through this forwarding, so that the NCCL
// switch stays in this file.
std::unique_ptr<DeviceComm> make_device_comm(int rank, int size, Device device,
                                             const std::function<void(const Tensor&)>& share_id) {
  return make_nccl_comm(rank, size, device, share_id);
}
#else
std::unique_ptr<DeviceComm> make_device_comm(int, int, Device device, const std::function<void(const Tensor&)>&) {
  SX_THROW(NotBuiltError, "dist: collectives on ", device.str(), " need NCCL, and spinexr was built without it "
           "(a CUDA build finds nccl.h and libnccl in the CUDA toolkit)");
}
#endif

}  // namespace sx::dist
