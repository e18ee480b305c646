// The MPI process group (process_group.h): CPU tensors through OpenMPI's non-blocking collectives,
// CUDA tensors handed to the device communicator (NCCL). Compiled only when CMake found MPI.
//
// Waiting: a launched collective is polled (MPI_Test, which also drives MPI's progress) until done;
// between polls the group looks for failure notices (a message on a communicator of their own,
// sent by report_failure) and checks the deadline. So a rank that raised is named by the others at
// once, and one that died or hangs makes them throw after timeout_s, never block forever.
// The C API only (no deprecated C++ bindings, which would need libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "tensor/autograd.h"
#include "tensor/dist/device_comm.h"
#include "tensor/ops.h"

namespace sx::dist {
namespace {

constexpr int kFailTag = 77;
// Set once a collective failed here (timeout, another rank's failure, or this rank's): the
// outstanding collectives will never complete, so at exit the job is aborted instead of finalized
// (MPI_Finalize would wait for them).
bool g_failed = false;

MPI_Datatype mpi_type(DType d) {
  switch (d) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int64: return MPI_INT64_T;
    default: break;
  }
  SX_THROW(ValueError, "dist: collectives take float32, float64 or int64 tensors, got ", dtype_name(d));
}

void check_cpu_tensor(const Tensor& t, const char* what) {
  SX_CHECK(t.defined(), "dist: ", what, " of an undefined tensor");
  SX_CHECK(t.is_contiguous(), "dist: ", what, " needs a contiguous tensor");
}

class MpiGroup;

// A non-blocking MPI collective; Avg divides by the world size once the sum is in.
class MpiWork : public Work {
 public:
  MpiWork(MpiGroup* g, MPI_Request req, Tensor t, bool avg, const char* what)
      : g_(g), req_(req), t_(std::move(t)), avg_(avg), what_(what) {}
  void wait() override;
  bool test() override;

 private:
  void finish();
  MpiGroup* g_;
  MPI_Request req_;
  Tensor t_;
  bool avg_, done_ = false;
  const char* what_;
};

class MpiGroup : public ProcessGroup {
 public:
  MpiGroup(double timeout_s, Device device) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      std::atexit(finalize_at_exit);
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_dup(MPI_COMM_WORLD, &notice_comm_);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm local;  // the ranks sharing this machine's memory: the local rank picks the GPU
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_free(&local);
    timeout_s_ = timeout_s;
    if (device.is_cuda()) {
      cuda_device_ = size_ == 1 ? device : Device::cuda(local_rank_);
      device_ = make_device_comm(rank_, size_, cuda_device_, [this](const Tensor& id) { broadcast(id, 0); });
    }
  }

  // The same ranks on a duplicate of this communicator (and a new NCCL communicator when this group
  // has one, its id broadcast on the duplicate). Failure notices stay on the one notice
  // communicator: a rank that fails is seen by whichever group the others are waiting in.
  std::shared_ptr<ProcessGroup> dup() override {
    auto g = std::shared_ptr<MpiGroup>(new MpiGroup());
    MPI_Comm_dup(comm_, &g->comm_);
    g->notice_comm_ = notice_comm_;
    g->rank_ = rank_;
    g->size_ = size_;
    g->local_rank_ = local_rank_;
    g->timeout_s_ = timeout_s_;
    g->cuda_device_ = cuda_device_;
    if (device_) {
      MpiGroup* raw = g.get();
      g->device_ = make_device_comm(rank_, size_, cuda_device_, [raw](const Tensor& id) { raw->broadcast(id, 0); });
    }
    return g;
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string backend() const override { return device_ ? "mpi+nccl" : "mpi"; }

  std::shared_ptr<Work> all_reduce_async(Tensor t, ReduceOp op) override {
    if (t.device().is_cuda()) return device_comm("all_reduce").all_reduce_async(t, op, timeout_s_);
    check_cpu_tensor(t, "all_reduce");
    MPI_Request req;
    MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t.dtype()), MPI_SUM, comm_, &req);
    return std::make_shared<MpiWork>(this, req, t, op == ReduceOp::Avg, "all_reduce");
  }

  void broadcast(const Tensor& t, int root) override {
    SX_CHECK(root >= 0 && root < size_, "dist: broadcast root ", root, " out of range for ", size_, " ranks");
    if (t.device().is_cuda()) return device_comm("broadcast").broadcast(t, root, timeout_s_);
    check_cpu_tensor(t, "broadcast");
    const bool bytes = t.dtype() == DType::UInt8;
    MPI_Request req;
    MPI_Ibcast(t.data_ptr(), static_cast<int>(t.numel()), bytes ? MPI_BYTE : mpi_type(t.dtype()), root, comm_, &req);
    MpiWork(this, req, t, false, "broadcast").wait();
  }

  Tensor all_gather(const Tensor& t) override {
    if (t.device().is_cuda()) return device_comm("all_gather").all_gather(t, timeout_s_);
    Tensor src = t.contiguous();
    Shape shape = src.shape();
    shape.insert(shape.begin(), size_);
    Tensor out = Tensor::empty(shape, src.dtype());
    MPI_Request req;
    const int n = static_cast<int>(src.numel());
    MPI_Iallgather(src.data_ptr(), n, mpi_type(src.dtype()), out.data_ptr(), n, mpi_type(src.dtype()), comm_, &req);
    MpiWork(this, req, out, false, "all_gather").wait();
    return out;
  }

  void barrier() override {
    MPI_Request req;
    MPI_Ibarrier(comm_, &req);
    MpiWork(this, req, Tensor(), false, "barrier").wait();
  }

  void report_failure(const std::string& what) override {
    g_failed = true;
    if (reported_) return;
    reported_ = true;
    std::vector<MPI_Request> reqs;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      reqs.emplace_back();
      MPI_Isend(what.data(), static_cast<int>(what.size()), MPI_CHAR, r, kFailTag, notice_comm_, &reqs.back());
    }
    // Small messages go out eagerly; give the others a moment to receive and report before this
    // process exits (mpirun then ends the job).
    const auto t0 = std::chrono::steady_clock::now();
    int all = 0;
    while (!all && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2)) {
      MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &all, MPI_STATUSES_IGNORE);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }

  // Throws DistError when another rank reported a failure.
  void check_notices() {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kFailTag, notice_comm_, &flag, &st);
    if (!flag) return;
    int n = 0;
    MPI_Get_count(&st, MPI_CHAR, &n);
    std::string msg(static_cast<size_t>(n), '\0');
    MPI_Recv(msg.data(), n, MPI_CHAR, st.MPI_SOURCE, kFailTag, notice_comm_, MPI_STATUS_IGNORE);
    reported_ = true;  // this rank stops because of another: it reports nothing itself
    g_failed = true;
    SX_THROW(DistError, "dist: rank ", st.MPI_SOURCE, " failed: ", msg, " (rank ", rank_, " stops)");
  }

  void wait(MPI_Request& req, const char* what) {
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      int done = 0;
      MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      if (done) return;
      check_notices();
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (waited > timeout_s_ && (g_failed = true))
        SX_THROW(DistError, "dist: rank ", rank_, ": ", what, " got no answer from the other ranks within ", timeout_s_,
                 " s (--dist-timeout): a rank died, hangs, or runs a different step");
      // OpenMPI moves a large all-reduce only inside MPI calls: poll without sleeping while a
      // transfer is likely under way (the first second), then back off (a slow or dead peer).
      if (waited < 1.0) std::this_thread::yield();
      else std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

 private:
  static void finalize_at_exit() {
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin) return;
    if (g_failed) MPI_Abort(MPI_COMM_WORLD, 1);
    else MPI_Finalize();
  }
  DeviceComm& device_comm(const char* what) {
    SX_CHECK(device_ != nullptr, "dist: ", what, " of a CUDA tensor, but the group was made for the CPU");
    return *device_;
  }
  MpiGroup() = default;  // dup() fills it in
  MPI_Comm comm_ = MPI_COMM_NULL, notice_comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  Device cuda_device_ = Device::cpu();  // the rank's GPU when the group has a device communicator
  bool reported_ = false;
  std::unique_ptr<DeviceComm> device_;
};

void MpiWork::finish() {
  done_ = true;
  if (avg_ && t_.defined()) {
    NoGradGuard ng;
    t_.copy_(mul(t_, 1.0 / g_->size()));
  }
}

void MpiWork::wait() {
  if (done_) return;
  g_->wait(req_, what_);
  finish();
}

bool MpiWork::test() {
  if (done_) return true;
  int done = 0;
  MPI_Test(&req_, &done, MPI_STATUS_IGNORE);
  if (done) finish();
  else g_->check_notices();
  return done_;
}

}  // namespace

std::shared_ptr<ProcessGroup> make_mpi_group(double timeout_s, Device device) {
  return std::make_shared<MpiGroup>(timeout_s, device);
}

}  // namespace sx::dist
