// NCCL collectives on CUDA tensors (the device side of the MPI group, device_comm.h). Compiled only
// in CUDA builds that found nccl.h / libnccl in the CUDA toolkit (SX_WITH_NCCL).
//
// Bootstrap (as llm.c does): rank 0 makes the unique id, the host group broadcasts its bytes, every
// rank calls ncclCommInitRank on its GPU (cuda:local_rank).
// Streams: NCCL runs on a stream of its own, so a bucket's all-reduce overlaps the backward kernels
// still queued on the compute stream. Each collective first waits (an event) for the compute
// stream's work so far (the gradients it reads), and the compute stream waits for the collective's
// end event before anything reads the result.
// Deadline: wait() polls the end event; past timeout_s the communicator is aborted
// (ncclCommAbort) and DistError names the collective, instead of a hang inside NCCL.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "tensor/cuda_context.h"
#include "tensor/dist/device_comm.h"

namespace sx::dist {
namespace {

#define SX_NCCL_CHECK(call)                                                                         \
  do {                                                                                              \
    ncclResult_t r_ = (call);                                                                       \
    if (r_ != ncclSuccess) SX_THROW(DistError, "dist: NCCL: ", #call, ": ", ncclGetErrorString(r_)); \
  } while (0)

ncclDataType_t nccl_type(DType d) {
  switch (d) {
    case DType::Float32: return ncclFloat32;
    case DType::Float64: return ncclFloat64;
    case DType::Int64: return ncclInt64;
    default: break;
  }
  SX_THROW(ValueError, "dist: NCCL collectives take float32, float64 or int64 tensors, got ", dtype_name(d));
}

class NcclComm;

class NcclWork : public Work {
 public:
  NcclWork(NcclComm* c, cudaEvent_t ev, const char* what, double timeout_s)
      : c_(c), ev_(ev), what_(what), timeout_s_(timeout_s) {}
  ~NcclWork() override { cudaEventDestroy(ev_); }
  bool test() override;
  void wait() override;

 private:
  NcclComm* c_;
  cudaEvent_t ev_;
  const char* what_;
  double timeout_s_;
  bool joined_ = false;
};

class NcclComm : public DeviceComm {
 public:
  NcclComm(int rank, int size, Device device, const std::function<void(const Tensor&)>& share_id)
      : device_(device), rank_(rank) {
    cuda::set_device(device.index);
    ncclUniqueId id;
    if (rank == 0) SX_NCCL_CHECK(ncclGetUniqueId(&id));
    Tensor bytes = Tensor::empty({static_cast<int64_t>(sizeof(id))}, DType::UInt8);
    std::memcpy(bytes.data_ptr(), &id, sizeof(id));
    share_id(bytes);
    std::memcpy(&id, bytes.data_ptr(), sizeof(id));
    SX_NCCL_CHECK(ncclCommInitRank(&comm_, size, id, rank));
    SX_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~NcclComm() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::shared_ptr<Work> all_reduce_async(Tensor t, ReduceOp op, double timeout_s) override {
    check(t, "all_reduce");
    after_compute();
    SX_NCCL_CHECK(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()),
                                op == ReduceOp::Avg ? ncclAvg : ncclSum, comm_, stream_));
    return std::make_shared<NcclWork>(this, record(), "all_reduce", timeout_s);
  }

  void broadcast(const Tensor& t, int root, double timeout_s) override {
    check(t, "broadcast");
    after_compute();
    SX_NCCL_CHECK(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), root,
                                comm_, stream_));
    NcclWork(this, record(), "broadcast", timeout_s).wait();
  }

  Tensor all_gather(const Tensor& t, double timeout_s) override {
    Tensor src = t.contiguous();
    check(src, "all_gather");
    int size = 0;
    SX_NCCL_CHECK(ncclCommCount(comm_, &size));
    Shape shape = src.shape();
    shape.insert(shape.begin(), size);
    Tensor out = Tensor::empty(shape, src.dtype(), device_);
    after_compute();
    SX_NCCL_CHECK(ncclAllGather(src.data_ptr(), out.data_ptr(), static_cast<size_t>(src.numel()), nccl_type(src.dtype()),
                                comm_, stream_));
    NcclWork(this, record(), "all_gather", timeout_s).wait();
    return out;
  }

  // The compute stream waits for the collective behind `ev`.
  void join(cudaEvent_t ev) { SX_CUDA_CHECK(cudaStreamWaitEvent(cuda::current_stream(device_.index), ev, 0)); }
  [[noreturn]] void abort_after_timeout(const char* what, double timeout_s) {
    ncclCommAbort(comm_);
    comm_ = nullptr;
    SX_THROW(DistError, "dist: rank ", rank_, ": NCCL ", what, " did not finish within ", timeout_s,
             " s (--dist-timeout): a rank died, hangs, or runs a different step; communicator aborted");
  }

 private:
  void check(const Tensor& t, const char* what) {
    SX_CHECK(comm_ != nullptr, "dist: NCCL ", what, " after the communicator was aborted");
    SX_CHECK(t.device() == device_, "dist: NCCL ", what, " of a tensor on ", t.device().str(), ", the rank's GPU is ",
             device_.str());
    SX_CHECK(t.is_contiguous(), "dist: NCCL ", what, " needs a contiguous tensor");
  }
  // NCCL's stream waits for what the compute stream has queued so far.
  void after_compute() {
    cudaEvent_t ev;
    SX_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    SX_CUDA_CHECK(cudaEventRecord(ev, cuda::current_stream(device_.index)));
    SX_CUDA_CHECK(cudaStreamWaitEvent(stream_, ev, 0));
    SX_CUDA_CHECK(cudaEventDestroy(ev));
  }
  cudaEvent_t record() {
    cudaEvent_t ev;
    SX_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    SX_CUDA_CHECK(cudaEventRecord(ev, stream_));
    return ev;
  }
  Device device_;
  int rank_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

bool NcclWork::test() {
  const cudaError_t e = cudaEventQuery(ev_);
  if (e == cudaErrorNotReady) return false;
  SX_CUDA_CHECK(e);
  if (!joined_) c_->join(ev_);
  joined_ = true;
  return true;
}

void NcclWork::wait() {
  const auto t0 = std::chrono::steady_clock::now();
  while (!test()) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s_)
      c_->abort_after_timeout(what_, timeout_s_);
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

}  // namespace

std::unique_ptr<DeviceComm> make_nccl_comm(int rank, int size, Device device,
                                           const std::function<void(const Tensor&)>& share_id) {
  return std::make_unique<NcclComm>(rank, size, device, share_id);
}

}  // namespace sx::dist
